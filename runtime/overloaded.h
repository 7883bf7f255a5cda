// Overloaded: one callable of several lambdas, for std::visit:
//   std::visit(Overloaded{[](const A&) {...}, [](const auto&) {...}}, variant)
#pragma once

namespace weft {

template <typename... Visitors>
struct Overloaded : Visitors... {
  using Visitors::operator()...;
};
template <typename... Visitors>
Overloaded(Visitors...) -> Overloaded<Visitors...>;  // clang 16 deduces no aggregate of lambdas

}  // namespace weft
