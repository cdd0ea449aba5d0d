// Behaviour of the public headers' inline logic that the other test files do not pin down
// (issue 17, part 5: mutants of the public headers).
#include <cancelkit/cancelkit.hpp>

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

using namespace cancelkit;

namespace {

// ---- detail/callback_storage.hpp: where an over-aligned callable is built ----------------------

// A callable whose alignment exceeds alignof(std::max_align_t) but whose size is small: with
// the node header it still fits a small block (96 bytes), so only the alignment test keeps it
// out of the small-block cache, whose blocks are aligned to alignof(std::max_align_t) only.
struct alignas(32) over_aligned_probe {
  int* runs;
  int* misaligned;

  void operator()() && {
    // Through a volatile pointer: the compiler may not fold the test by assuming that `this`
    // has the alignment of its type, which is exactly what is in question.
    const void* volatile self = this;
    if (reinterpret_cast<std::uintptr_t>(self) % alignof(over_aligned_probe) != 0) ++*misaligned;
    ++*runs;
  }
};
static_assert(alignof(over_aligned_probe) > alignof(std::max_align_t));
static_assert(sizeof(over_aligned_probe) + sizeof(detail::owned_callback_node) <=
                  detail::small_block_size,
              "the probe must be small enough for a small block: only its alignment keeps it out");

// ---- cancellation_registration.hpp: a registration destroyed inside its own callback -----------

// Counts its live instances; `alive` is cleared by the destructor, so a callable that is
// destroyed while it still runs can see it.
struct lifetime_probe {
  int* live;
  std::optional<cancellation_registration>* reg;
  bool* alive_after_reset;
  bool alive = true;

  lifetime_probe(int* l, std::optional<cancellation_registration>* r, bool* a) noexcept
      : live(l), reg(r), alive_after_reset(a) {
    ++*live;
  }
  lifetime_probe(const lifetime_probe& o) noexcept
      : live(o.live), reg(o.reg), alive_after_reset(o.alive_after_reset) {
    ++*live;
  }
  lifetime_probe& operator=(const lifetime_probe&) = delete;
  ~lifetime_probe() {
    alive = false;
    --*live;
  }

  void operator()() && {
    reg->reset();  // S10: destroys the handle that owns this very callable
    // The node must outlive the running callback: the dispatcher releases it afterwards.
    *alive_after_reset = alive;
  }
};

}  // namespace

// detail/callback_storage.hpp ("larger or over-aligned ones get a block of their own"); S5.
// Issue 17, part 5: kills mutant 52 (small_block_ignores_alignment), which builds such a callable
// in a small block aligned to alignof(std::max_align_t) only. Many at once, so that blocks of
// both alignments modulo 32 are handed out whatever the allocator does.
TEST(HeaderLogicStorage, SmallOverAlignedCallable_IsStoredAtItsAlignment) {
  cancellation_source s;
  int runs = 0;
  int misaligned = 0;
  std::vector<cancellation_registration> regs;
  constexpr int count = 96;  // more than a thread's block cache holds (64)
  regs.reserve(count);
  for (int i = 0; i < count; ++i) {
    regs.push_back(s.token().register_callback(over_aligned_probe{&runs, &misaligned}));
  }
  EXPECT_TRUE(s.cancel());
  EXPECT_EQ(runs, count);
  EXPECT_EQ(misaligned, 0) << "callables stored below their alignment";
}

// S9, S10: a registration destroyed from inside its own callback hands its node to the
// dispatcher, which frees it once the callback has returned: the callable is still alive for
// the rest of its run, and it is destroyed exactly once. Issue 17, part 5: kills mutant 50
// (registration_frees_running_node), whose destructor frees the node at once and the dispatcher
// frees it again.
TEST(HeaderLogicRegistration, DestroyedInsideItsOwnCallback_NodeOutlivesTheRunAndIsFreedOnce) {
  int live = 0;
  bool alive_after_reset = false;
  {
    cancellation_source s;
    std::optional<cancellation_registration> reg;
    reg.emplace(s.token().register_callback(lifetime_probe(&live, &reg, &alive_after_reset)));
    ASSERT_EQ(live, 1);  // only the stored copy is left
    EXPECT_TRUE(s.cancel());
    EXPECT_FALSE(reg.has_value());
  }
  EXPECT_TRUE(alive_after_reset) << "the callable was destroyed while it ran";
  EXPECT_EQ(live, 0) << "the callable was destroyed " << (live < 0 ? "more than once" : "never");
}

// ---- detail/callback_storage.hpp: a callable whose copy throws while the node is built ------

namespace {

struct copy_refused {};

// A callable whose copy constructor throws on demand; counts live instances (so a node whose
// callable was built and then lost shows up as a leak of one instance) and its runs. `Pad` makes
// it large enough to leave the small-block cache (the other allocation path of create()).
template <std::size_t Pad>
struct refusing_callable {
  int* live;
  int* runs;
  bool refuse_copy;
  unsigned char pad[Pad] = {};

  refusing_callable(int* l, int* r, bool refuse) : live(l), runs(r), refuse_copy(refuse) {
    ++*live;
  }
  refusing_callable(const refusing_callable& other)
      : live(other.live), runs(other.runs), refuse_copy(false) {
    if (other.refuse_copy) throw copy_refused();
    ++*live;
  }
  ~refusing_callable() { --*live; }
  void operator()() && { ++*runs; }
};

template <std::size_t Pad>
void expect_no_change_when_the_copy_throws() {
  int live = 0;
  int runs = 0;
  cancellation_source source;
  {
    const refusing_callable<Pad> callable(&live, &runs, /*refuse=*/true);
    EXPECT_THROW(static_cast<void>(source.token().register_callback(callable)), copy_refused);
    EXPECT_EQ(live, 1) << "only the caller's callable may be alive after the failed copy";
  }
  EXPECT_EQ(live, 0);
  EXPECT_TRUE(source.cancel());
  EXPECT_EQ(runs, 0) << "a registration whose callable could not be stored must not exist";
  // The storage the failed node used is reusable: a later registration works as usual.
  cancellation_source next;
  {
    const refusing_callable<Pad> callable(&live, &runs, /*refuse=*/false);
    const cancellation_registration r = next.token().register_callback(callable);
    EXPECT_TRUE(next.cancel());
  }
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(live, 0);
}

}  // namespace

// S25: a callable whose copy throws while register_callback stores it leaves no registration and
// no half-built node behind, and the exception reaches the caller: the small-block path...
TEST(HeaderLogicStorage, SmallCallableWhoseCopyThrows_LeavesNothingRegistered) {
  static_assert(sizeof(refusing_callable<1>) + sizeof(detail::owned_callback_node) <=
                detail::small_block_size);
  expect_no_change_when_the_copy_throws<1>();
}

// ... and the path of a callable too large for a small block.
TEST(HeaderLogicStorage, LargeCallableWhoseCopyThrows_LeavesNothingRegistered) {
  static_assert(sizeof(refusing_callable<256>) + sizeof(detail::owned_callback_node) >
                detail::small_block_size);
  expect_no_change_when_the_copy_throws<256>();
}
