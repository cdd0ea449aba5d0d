// cancelkit/detail/callback_storage.hpp — where type-erased callbacks live.
//
// `register_callback` stores the callable in a node owned by the returned registration. Small
// callables (see `small_block_size`) go into fixed-size blocks recycled through a per-thread
// cache, so steady-state registration performs no heap allocation; larger or over-aligned ones
// get a block of their own from the global `operator new`. Allocation failure throws
// `std::bad_alloc` before anything is registered (S25).
#pragma once

#include <cancelkit/detail/state.hpp>

#include <concepts>
#include <cstddef>
#include <functional>
#include <new>
#include <stdexcept>
#include <type_traits>
#include <utility>

namespace cancelkit::detail {

// Blocks of this size hold an owned_callback_node header plus a small callable.
inline constexpr std::size_t small_block_size = 96;
inline constexpr std::size_t small_block_align = alignof(std::max_align_t);

// Per-thread cache of small blocks (impl/src/node_pool.cpp).
void* allocate_small_block();                      // throws std::bad_alloc
void deallocate_small_block(void* block) noexcept;

template <class F>
struct owned_callback final : owned_callback_node {
  template <class A>
  explicit owned_callback(A&& a) : fn(std::forward<A>(a)) {
    invoke = &run;
    release = &destroy;
  }

  static constexpr bool is_small =
      sizeof(owned_callback) <= small_block_size && alignof(owned_callback) <= small_block_align;

  static void run(callback_node* n) {
    // Invoked once (S4), as an rvalue: `F` is the decayed copy register_callback stores, and an
    // object-type callback is invoked as an rvalue by std::stop_callback too. register_callback
    // constrains on exactly this call and invokes its inline (S6) copy the same way.
    static_assert(std::is_object_v<F>, "owned_callback stores a decayed copy");
    std::invoke(std::move(static_cast<owned_callback*>(n)->fn));
  }

  static void destroy(owned_callback_node* n) noexcept {
    auto* self = static_cast<owned_callback*>(n);
    self->~owned_callback();
    if constexpr (is_small) {
      deallocate_small_block(self);
    } else {
      ::operator delete(static_cast<void*>(self), std::align_val_t{alignof(owned_callback)});
    }
  }

  // Builds the node; throws (and frees the block) if allocation or the callable's constructor
  // throws, so the caller sees either a complete node or no change at all.
  template <class A>
  static owned_callback* create(A&& a) {
    void* block = is_small ? allocate_small_block()
                           : ::operator new(sizeof(owned_callback),
                                            std::align_val_t{alignof(owned_callback)});
    try {
      return ::new (block) owned_callback(std::forward<A>(a));
    } catch (...) {
      if constexpr (is_small) {
        deallocate_small_block(block);
      } else {
        ::operator delete(block, std::align_val_t{alignof(owned_callback)});
      }
      throw;
    }
  }

  F fn;
};

template <class T>
struct is_std_function : std::false_type {};
template <class Sig>
struct is_std_function<std::function<Sig>> : std::true_type {};

// S25: an empty std::function or a null function pointer is refused before anything happens.
template <class F>
void require_callable(const F& f) {
  using D = std::remove_cvref_t<F>;
  bool empty = false;
  if constexpr (std::is_pointer_v<D> || std::is_member_pointer_v<D>) {
    empty = (f == nullptr);
  } else if constexpr (is_std_function<D>::value) {
    empty = !static_cast<bool>(f);
  }
  if (empty) throw std::invalid_argument("cancelkit: callback is empty or null");
}

}  // namespace cancelkit::detail
