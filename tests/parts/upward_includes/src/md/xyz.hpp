// Fixture: a header of the MD part.
#pragma once
#include "base/error.hpp"
