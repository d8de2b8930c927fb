#include "base/environment.hpp"

#include <cstdlib>
#include <cstring>

namespace klay {

bool switched_on_by_environment(const char* variable) {
  const char* value = std::getenv(variable);
  return !(value && std::strcmp(value, "0") == 0);
}

}  // namespace klay
