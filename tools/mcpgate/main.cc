#include <cstdio>

#include "core/build_info.h"

int main() {
  std::printf("mcpgate %s\n", mcpgate::version);
  return 0;
}
