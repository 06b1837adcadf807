// wanlab-engine: the engine's command line for machines without Node (GPU boxes, parity runs).
#include <iostream>

int main(int argc, char** argv) {
  std::cout << "wanlab-engine\n";
  return 0;
}
