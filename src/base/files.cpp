#include "base/files.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "base/error.hpp"

namespace klay {

std::string read_whole_file(const std::string& path, const std::string& what) {
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"), std::fclose);
  if (!file) throw Error(path + ": cannot open " + what + ": " + std::strerror(errno));
  // Opening a directory succeeds; only reading it fails, with a message that does not say why.
  struct stat info;
  if (fstat(fileno(file.get()), &info) == 0 && S_ISDIR(info.st_mode)) throw Error(path + ": is a directory, not a " + what);
  std::string content;
  char buffer[65536];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, file.get())) > 0) content.append(buffer, n);
  if (std::ferror(file.get())) throw Error(path + ": error while reading the " + what + ": " + std::strerror(errno));
  if (content.empty()) throw Error(path + ": empty file, expected a " + what);
  return content;
}

}  // namespace klay
