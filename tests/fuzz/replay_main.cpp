// Runs a fuzz target without libFuzzer (any compiler): every file of the corpus
// directories given on the command line, then a bounded number of pseudo-random inputs
// (fixed seed) built by mutating them. Used by ctest so the targets run in every build.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, size_t size);

int main(int argc, char** argv) {
  std::vector<std::string> inputs;
  for (int i = 1; i < argc; ++i) {
    for (const auto& e : std::filesystem::directory_iterator(argv[i])) {
      std::ifstream f(e.path(), std::ios::binary);
      inputs.emplace_back(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    }
  }
  for (const auto& in : inputs) LLVMFuzzerTestOneInput(reinterpret_cast<const unsigned char*>(in.data()), in.size());
  std::mt19937_64 rng(20261125);
  const char interesting[] = {'\r', '\n', '.', '<', '>', '@', ':', ' ', '=', '+', '%', '\0', '\xC3', '\xFF'};
  size_t runs = 0;
  for (int round = 0; round < 20000; ++round, ++runs) {
    std::string in = inputs.empty() ? std::string() : inputs[rng() % inputs.size()];
    const int edits = 1 + int(rng() % 8);
    for (int k = 0; k < edits; ++k) {
      const size_t at = in.empty() ? 0 : rng() % (in.size() + 1);
      switch (rng() % 4) {
        case 0: in.insert(at, 1, interesting[rng() % sizeof interesting]); break;
        case 1: in.insert(at, 1, char(rng() & 0xFF)); break;
        case 2: if (at < in.size()) in.erase(at, 1 + rng() % 4); break;
        case 3: if (at < in.size()) in[at] = char(rng() & 0xFF); break;
      }
    }
    LLVMFuzzerTestOneInput(reinterpret_cast<const unsigned char*>(in.data()), in.size());
  }
  std::printf("replayed %zu corpus inputs and %zu mutations\n", inputs.size(), runs);
  return 0;
}
