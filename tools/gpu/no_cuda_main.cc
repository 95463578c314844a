// Stand-in main for the GPU tools in a build without CUDA (--config=cpu): says so.
#include <cstdio>

int main() {
  std::fprintf(stderr, "built without CUDA (--config=cpu): this GPU tool is unavailable\n");
  return 2;
}
