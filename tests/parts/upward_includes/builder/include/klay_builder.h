/* Fixture: the YAML front end's header. */
#pragma once
