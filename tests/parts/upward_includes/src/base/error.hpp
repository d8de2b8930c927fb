// Fixture: the bottom part includes the YAML front end (what base/error.hpp once did).
#pragma once
#include <string>

#include "klay_builder.h"
