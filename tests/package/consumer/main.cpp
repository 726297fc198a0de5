// Uses the umbrella header; returns 0 only if the identity operator round-trips.
#include <softdiff/softdiff.hpp>
#include <cstdio>

int main() {
  softdiff::batch<float> x = xt::ones<float>({1, 1, 4, 4});
  softdiff::batch<float> y;
  softdiff::op::identity<float>{}.apply(0.0, x, y);
  const bool ok = y(0, 0, 3, 3) == 1.0f;
  std::puts(ok ? "consumer ok" : "consumer FAILED");
  return ok ? 0 : 1;
}
