#pragma once
// One flat parameter buffer and one flat gradient buffer for a whole network,
// with a registry of named views (name, shape, offset) in registration order.
// The network registers every tensor under its checkpoint name
// ("down.0.res.1.conv1.weight", docs/refunet.md), allocates once, then binds
// its layers to spans of the two buffers; the optimiser runs over one span and
// the checkpoint code iterates entries().
//
// Two phases: add() while laying out, then allocate(); spans handed out after
// allocate() stay valid for the store's lifetime and across a move of the store
// (the heap buffers move with it). A COPY of a store owns new buffers: layers
// bound to the original must be bound again (Layer::bind) to use the copy.
#include <algorithm>
#include <cstddef>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "softdiff/error.hpp"

namespace softdiff::nn {
namespace detail {
// softdiff::nn::detail would hide softdiff::detail for `detail::require` written inside softdiff::nn.
using ::softdiff::detail::concat;
using ::softdiff::detail::require;
}  // namespace detail

/// A registered tensor: checkpoint name, PyTorch shape, and where it lies in the flat buffers.
struct parameter_entry {
  std::string name;
  std::vector<std::size_t> shape;
  std::size_t offset = 0;
  std::size_t size = 0;
};

/// What a layer keeps from add(): enough to find its tensor again in any store with the same layout.
struct parameter_slot {
  std::size_t offset = 0;
  std::size_t size = 0;
};

template <class T = float>
class parameter_store {
public:
  using scalar_type = T;

  /// Registers `name` with `shape` (every extent > 0) at the end of the layout.
  parameter_slot add(std::string name, std::vector<std::size_t> shape) {
    detail::require(!allocated_, "parameter_store::add: '", name, "' registered after allocate()");
    detail::require(!name.empty(), "parameter_store::add: empty parameter name");
    detail::require(!index_.contains(name), "parameter_store::add: duplicate parameter name '", name, "'");
    detail::require(!shape.empty(), "parameter_store::add: '", name, "' has an empty shape");
    std::size_t size = 1;
    for (std::size_t e : shape) {
      detail::require(e > 0, "parameter_store::add: '", name, "' has a zero extent");
      size *= e;
    }
    const parameter_slot slot{total_, size};
    index_.emplace(name, entries_.size());
    entries_.push_back({std::move(name), std::move(shape), total_, size});
    total_ += size;
    return slot;
  }

  /// Sizes both buffers (zero-filled) to the registered layout; add() is refused afterwards.
  void allocate() {
    detail::require(!allocated_, "parameter_store::allocate: called twice");
    values_.assign(total_, T(0));
    grads_.assign(total_, T(0));
    allocated_ = true;
  }

  [[nodiscard]] bool allocated() const { return allocated_; }
  /// Scalars over all registered tensors.
  [[nodiscard]] std::size_t size() const { return total_; }
  [[nodiscard]] const std::vector<parameter_entry>& entries() const { return entries_; }

  [[nodiscard]] std::span<T> parameters() { return checked(values_, "parameters"); }
  [[nodiscard]] std::span<const T> parameters() const { return checked(values_, "parameters"); }
  [[nodiscard]] std::span<T> gradients() { return checked(grads_, "gradients"); }
  [[nodiscard]] std::span<const T> gradients() const { return checked(grads_, "gradients"); }

  [[nodiscard]] std::span<T> values(const parameter_slot& s) { return slice(values_, s); }
  [[nodiscard]] std::span<T> grads(const parameter_slot& s) { return slice(grads_, s); }
  [[nodiscard]] std::span<T> values(std::string_view name) { return values(slot_of(name)); }
  [[nodiscard]] std::span<T> grads(std::string_view name) { return grads(slot_of(name)); }
  [[nodiscard]] std::span<const T> values(std::string_view name) const {
    const auto& e = entry(name);
    return std::span<const T>(checked(values_, "values")).subspan(e.offset, e.size);
  }

  /// The entry named `name`, or nullptr.
  [[nodiscard]] const parameter_entry* find(std::string_view name) const {
    const auto it = index_.find(name);
    return it == index_.end() ? nullptr : &entries_[it->second];
  }
  /// The entry named `name`; throws softdiff::error if there is none.
  [[nodiscard]] const parameter_entry& entry(std::string_view name) const {
    const parameter_entry* e = find(name);
    detail::require(e != nullptr, "parameter_store: no parameter named '", name, "'");
    return *e;
  }

  void zero_grad() { std::fill(grads_.begin(), grads_.end(), T(0)); }

private:
  template <class V>
  auto checked(V& v, const char* what) const {
    detail::require(allocated_, "parameter_store::", what, ": allocate() has not been called");
    return std::span(v.data(), v.size());
  }
  std::span<T> slice(std::vector<T>& v, const parameter_slot& s) {
    detail::require(allocated_, "parameter_store: views requested before allocate()");
    detail::require(s.size > 0 && s.offset + s.size <= total_, "parameter_store: slot [", s.offset, ", ",
                    s.offset + s.size, ") is not inside the layout of ", total_, " scalars");
    return std::span<T>(v.data() + s.offset, s.size);
  }
  [[nodiscard]] parameter_slot slot_of(std::string_view name) const {
    const auto& e = entry(name);
    return {e.offset, e.size};
  }

  std::vector<parameter_entry> entries_;
  std::map<std::string, std::size_t, std::less<>> index_;
  std::vector<T> values_, grads_;
  std::size_t total_ = 0;
  bool allocated_ = false;
};

}  // namespace softdiff::nn
