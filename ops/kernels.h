// Building blocks of the eager CPU kernels.
#pragma once

#include <array>
#include <utility>

#include "weft/runtime/strided.h"
#include "weft/runtime/tensor.h"

namespace weft {

// A view of x broadcast to `shape` (NumPy rules; stride 0 on broadcast dimensions).
Tensor broadcast_view(const Tensor& x, const Shape& shape);

template <typename>
using TensorFor = Tensor;  // one Tensor parameter per element type in a pack

// out[i] = f(inputs[i]...) over out's shape; every input already has out's shape (use
// broadcast_view). Contiguous rows get a plain loop the compiler vectorises.
template <typename TOut, typename... TIn, typename F>
void map_into(const Tensor& out, F&& f, const TensorFor<TIn>&... inputs) {
  constexpr std::size_t N = 1 + sizeof...(TIn);
  TOut* out_base = out.data<TOut>();
  const std::tuple<const TIn*...> in_base{inputs.template data<TIn>()...};
  const std::array<const Shape*, N> strides{&out.strides(), &inputs.strides()...};
  for_each_row<N>(
      out.shape(), strides,
      [&](const std::array<int64_t, N>& off, int64_t n, const std::array<int64_t, N>& step) {
        [&]<std::size_t... K>(std::index_sequence<K...>) {
          TOut* o = out_base + off[0];
          const std::tuple<const TIn*...> in{(std::get<K>(in_base) + off[K + 1])...};
          if (((step[K + 1] == 1) && ... && (step[0] == 1))) {
            for (int64_t i = 0; i < n; ++i) o[i] = f(std::get<K>(in)[i]...);
          } else {
            for (int64_t i = 0; i < n; ++i) o[i * step[0]] = f(std::get<K>(in)[i * step[K + 1]]...);
          }
        }
        (std::index_sequence_for<TIn...>{});
      });
}

// Folds `in` into `out`, whose shape is in's with size 1 on the reduced axes and whose elements
// are accumulators (Acc): out = combine(out, in[i]) for every element mapped onto it. `out` holds
// the initial values.
template <typename T, typename Acc, typename Combine>
void reduce_into(const Tensor& out, const Tensor& in, Combine&& combine) {
  const Tensor target = broadcast_view(out, in.shape());
  Acc* out_base = target.data<Acc>();
  const T* in_base = in.data<T>();
  for_each_row<2>(
      in.shape(), {&target.strides(), &in.strides()},
      [&](const std::array<int64_t, 2>& off, int64_t n, const std::array<int64_t, 2>& step) {
        Acc* o = out_base + off[0];
        const T* a = in_base + off[1];
        if (step[0] == 0) {  // a whole row folds into one element
          Acc acc = *o;
          for (int64_t i = 0; i < n; ++i) acc = combine(acc, Acc(a[i * step[1]]));
          *o = acc;
        } else {
          for (int64_t i = 0; i < n; ++i)
            o[i * step[0]] = combine(o[i * step[0]], Acc(a[i * step[1]]));
        }
      });
}

// Copies values (converting the element type) between same-shape tensors of any strides.
void copy_into(const Tensor& out, const Tensor& in);

// The sizes of the dimensions before `axis`, at `axis`, and after it.
struct AxisSplit {
  int64_t outer, axis, inner;
};
AxisSplit split_at_axis(const Shape& shape, int64_t axis);

}  // namespace weft
