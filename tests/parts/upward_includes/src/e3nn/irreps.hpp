// Fixture: a part's own header.
#pragma once
