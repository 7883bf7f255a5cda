// Uses the installed weft package: a forward pass, backward, and gradcheck.
#include <weft/weft.h>

#include <cmath>
#include <cstdio>
#include <vector>

int main() {
  weft::Tensor x = weft::randn({4, 3});
  weft::Tensor W = weft::randn({3, 2}, {.requires_grad = true});

  weft::Tensor loss = weft::tanh(weft::matmul(x, W)).sum();
  loss.backward();

  const weft::Tensor& grad = W.grad();
  if (!grad.defined() || grad.shape() != weft::Shape{3, 2}) {
    std::fprintf(stderr, "consumer: W.grad() is missing or has the wrong shape\n");
    return 1;
  }
  if (!std::isfinite(loss.item())) {
    std::fprintf(stderr, "consumer: the loss is not finite\n");
    return 1;
  }

  auto f = [](const std::vector<weft::Tensor>& in) {
    return weft::tanh(weft::matmul(in[0], in[1])).sum();
  };
  weft::GradcheckReport report = weft::gradcheck(f, {x, W.detach()});
  if (!report.passed()) {
    std::fprintf(stderr, "consumer: gradcheck failed\n%s\n", report.to_string().c_str());
    return 1;
  }
  std::printf("consumer: loss %.6f, W.grad shape [3, 2], gradcheck passed\n", loss.item());
  return 0;
}
