// cancelkit/detail/state.hpp — THE concurrent core, written once.
//
// One `state` object is shared by every handle of one cancellation source: source handles,
// tokens, registrations, cancellation_callbacks, linked children and the source's timer. This
// file owns the state word, the intrusive LIFO callback list, dispatch, dispose-waiting,
// reference counting, the "can still be cancelled" count and linked propagation. The public
// handles, the timers and std interop are thin layers over the functions here. The model checker
// (stress/model_check) compiles this same file against Relacy through `detail/sync.hpp`.
//
// ---------------------------------------------------------------------------------------------
// Shared-state invariants (cited in the code as [I1]..[I18])
//
// [I1]  `word` holds five flags: REQUESTED (bit 0), LOCKED, ORPHANED, WAITERS, DISPATCHING.
//       Every change of `word` is made under the lock: the compare-exchange that sets LOCKED
//       (from the word as loaded, or from 0 by a caller that expects no flag, [I16]), and the
//       holder's release store that clears it. So unlocking is a plain store of the holder's
//       copy, with any flag changes folded in (no second read-modify-write).
// [I2]  REQUESTED is set at most once and never cleared. ORPHANED likewise. They are never both
//       set: each is set only under the lock, and only if neither is set yet. (try_reset succeeds
//       only while neither is set, and clears neither.)
// [I3]  The fields marked "guarded" below are read and written only under the lock.
// [I4]  A callback node is linked in `head`'s list iff its `prev_next` is non-null; then its
//       `next` is the list's, otherwise the same storage is its `batch_tag` [I6]. Nodes are
//       pushed at the front and popped from the front (LIFO, S5). Linking happens only while
//       neither REQUESTED nor ORPHANED is set (S6, S7).
// [I5]  `reason` and `dispatcher` are written by the thread that sets REQUESTED, before the
//       release store that publishes REQUESTED, and never written again; anyone who observes
//       REQUESTED with acquire may read them without the lock (S3, S16). The idle request [I16]
//       writes neither: `reason` is still the null it was born with (nothing writes it before a
//       request), and `dispatcher` is only read while a callback runs, which cannot happen to a
//       state that had no callback when it was requested (none can be linked afterwards [I4]).
// [I6]  Dispatch runs the list in batches: the first node alone, then up to BATCH nodes each.
//       (A request whose only work is one callback runs that first batch and nothing else:
//       request_locked's short path, the same protocol without the work list.)
//       Under the lock, the dispatcher pops the next batch off the front, gives the k-th of its
//       nodes (k = 0, 1, ..., latest first) the tag `batch_base + k` and keeps the pointers in
//       its own frame; `claims` starts the batch at 0: slot 0 runs (the running slot r, bits
//       0..7 of `claims`, is 0), every other slot is pending.
//       A node of the current batch is one whose tag t has `t - batch_base < BATCH`; the batch
//       ends under the lock, which adds BATCH to `batch_base`, so every tag of an ended batch is
//       stale (tags only grow: a state is dispatched once, and 0 means "never batched").
//       Between the two lock holds the dispatcher moves from slot k to slot k + 1 with ONE
//       fetch_add of 1 to `claims`: it ends slot k and claims slot k + 1 in one read-modify-
//       write, with no loop and no failure. So a node of the current batch, in slot j, is by
//       `claims`: pending while j > r (unregister() takes it back by setting TAKEN(j) with a
//       compare-exchange, under the lock [S8], which fails if r moved), running while j == r,
//       ran once j < r. Whoever decides a pending slot owns the node's fate: the dispatcher's
//       fetch_add returns the word as it was just before r reached j; without TAKEN(j) in it
//       the dispatcher runs the node (any later compare-exchange of a disposer fails: it
//       expected the old r), with it the unregistering thread has removed the node and the
//       dispatcher skips it, never touching it again. One read-modify-write per callback, one
//       lock round trip per batch, as with a lock per callback but without its unlocking store
//       and list surgery on the hot line. Only the dispatcher changes r, and only outside the
//       lock; everyone else only sets per-slot bits (TAKEN, WAITER, RELEASE [I18]), under the
//       lock, never clears one. The dispatcher never adds past the last slot (it ends that one
//       under the lock), so r never carries into the bits above it.
//       With throw_on_first (S13) the batch ends early and its pending nodes are linked again,
//       in order: they stay registered (unregister() returns true) and never run.
// [I7]  `refs` counts what keeps the memory alive: source handles, tokens, registrations,
//       temporary references of timers and of orphan propagation, each child's link to a parent,
//       each unit weighing 1, plus ONE collective reference for all cancellation_callbacks
//       (RAII_HOLDS in `raii`), weighing COLLECTIVE (the top bit), taken by the first
//       cancellation_callback and kept across later ones so that registering a
//       cancellation_callback touches no reference count in the steady state. A dispatch holds
//       no reference: DISPATCHING keeps the memory [I17].
// [I8]  The unit part of `refs` (refs & UNITS) drops to 0 only under the lock: the lock-free
//       decrement refuses to take it below 1, so it only ever leaves a unit that someone else
//       holds. Hence under the lock a non-zero `refs` cannot reach zero, and `refs == COLLECTIVE`
//       means "only the collective reference is left". Weighing the collective reference apart
//       is what lets the common 2 -> 1 drop (a token going while its source stays) skip the lock:
//       the count alone says whether a unit remains.
// [I9]  The low bits of `raii` (guarded) count constructed cancellation_callbacks of this state
//       that were stored (not run inline, not refused); while the count is non-zero, RAII_HOLDS
//       is set.
// [I10] `cancellers` counts what can still request cancellation: source handles, the armed timer,
//       live linked parents, a std::stop_token parent. It reaches 0 at most once (nothing can add
//       a canceller without already being one); the thread that takes it to 0 orphans the state.
// [I11] A child appears in a parent's `children` list from link time until the child's memory is
//       about to be freed; it is unlinked under the parent's lock. Hence, under a parent's lock,
//       every child in its list is valid memory (though it may be dying: refs == 0).
// [I12] Lock order: a parent's lock may be held while taking a child's lock, never the reverse,
//       and no thread holds more than two state locks. Parents are created before their children
//       and links never change, so the parent->child relation is acyclic and this order cannot
//       deadlock. The timer service's mutex is taken before any state lock, never after.
// [I13] `work_next` belongs to the one thread that has put the state on a work list: the thread
//       that set REQUESTED (cancel propagation), that set ORPHANED (orphan propagation) or that
//       frees the state (destruction: it took `refs` to 0, or ended the dispatch that found it
//       at 0 [I17]). By [I2], [I8] and [I17] these are distinct moments in the state's life, so
//       the field is never used by two threads at once.
// [I14] `ext` is set at most once, under the lock, and never cleared before destruction. So a
//       thread that publishes REQUESTED under the lock either sees the extension (and calls
//       on_requested) or the installer, taking the lock after it, sees REQUESTED and handles the
//       cancelled state itself (to_stop_token re-checks; a timer armed late fires into a no-op).
// [I15] Parties that hold no reference — the armed timer and the std::stop_token parent's
//       trigger — exist only through the extension, and take a reference with try_add_ref(),
//       which can lift `refs` from 1 to 2 at any moment. So a state may be freed without a
//       read-modify-write of `refs` (try_destroy_sole_owner) only if it has no extension, read
//       AFTER the acquire load that found `refs == 1`: every other owner installed any extension
//       before it dropped its reference, and that drop is what the acquire load read (or
//       continued the release sequence of), so the extension is visible to the later load. Read
//       before that load, a null `ext` may be stale (issue 16, defect 2: a timer armed by another
//       handle then revives freed memory). The order is refs, then ext, then word.
// [I16] The idle request: a request that finds, under the lock, no callback (`head`), no child
//       (`children`), no extension (`ext`, [I14]) and no waiter (WAITERS) has nothing to do but
//       set REQUESTED, and does it in the unlock store itself: one read-modify-write in all
//       (cancel() without a reason, S1). Anything that adds work later takes the lock after that
//       store and sees REQUESTED [I4] [I11] [I14]. cancel()'s first access to the word is a
//       compare-exchange from 0 (try_lock_from_zero), never a load, so the cache line is fetched
//       for writing once, even while other threads poll the word; a failure that shows REQUESTED
//       or ORPHANED is the answer (S2, S23), any other takes the lock the usual way.
// [I17] DISPATCHING is set in the same store that publishes REQUESTED when the request has work
//       (a callback, a child or an extension), and by a parent's dispatcher for each child it
//       claims; the dispatcher clears it, under the lock, once it is done with the state. While
//       it is set the memory is not freed: a thread that takes `refs` to 0 under the lock and
//       sees DISPATCHING leaves the state to the dispatcher, which frees it when it clears
//       DISPATCHING and finds `refs == 0` (S10: a callback may drop the last handle). Both
//       decisions are made under the lock, so exactly one thread frees. The sole-owner free
//       (try_destroy_sole_owner) never runs while DISPATCHING is set.
// [I18] A disposer on another thread that finds its node running [I6] (slot j == r) sets
//       WAITER(j) in `claims` (a compare-exchange that also re-checks that r is still j) and
//       waits until `completions` has reached its node's tag (serial-number order on the tags'
//       low 32 bits). The dispatcher is the only writer of `completions`: it stores a callback's
//       tag after the callback returned if the fetch_add that ended the slot (or, for a batch's
//       last slot, its read under the lock) found WAITER of that slot, and then wakes; and it
//       stores the last tag at every batch end but the first's (one node, tag 1). Tags grow, so
//       the word never goes back, and a store for an earlier callback cannot release a later
//       one's waiter. Stored at those batch ends, it never lags the running tag by more than
//       3 * BATCH, so the 32-bit comparison cannot wrap. A callback that disposes its own owned
//       node (whose block must outlive the call) sets RELEASE(j) instead of waiting, and the
//       dispatcher frees the block after the callback returned. The bits are per slot, so a
//       flag of slot j is never mistaken for one of a later slot, and nobody needs to clear
//       one: the next batch starts `claims` at 0 again.
// ---------------------------------------------------------------------------------------------
#pragma once

#include <cancelkit/detail/sync.hpp>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <new>
#include <utility>
#include <vector>

namespace cancelkit {
class timer_service;
}

// The per-thread cache of state blocks (state::operator new, impl/src/node_pool.cpp). Off in the
// model checker, whose own new and delete find leaks and uses after free, and under
// AddressSanitizer, whose quarantine must see every freed state (a reused block would hide a
// use after free, the class of issue 16's defect 1).
#if defined(CANCELKIT_SYNC_RELACY) || defined(__SANITIZE_ADDRESS__)
#define CANCELKIT_STATE_CACHE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CANCELKIT_STATE_CACHE 0
#endif
#endif
#ifndef CANCELKIT_STATE_CACHE
#define CANCELKIT_STATE_CACHE 1
#endif

// A state starts a cache line (see its data members), except in the model checker, whose own
// new and delete know no alignment.
#if defined(CANCELKIT_SYNC_RELACY)
#define CANCELKIT_STATE_ALIGNMENT
#else
#define CANCELKIT_STATE_ALIGNMENT alignas(64)
#endif

namespace cancelkit::detail {
inline namespace CANCELKIT_CORE_NS {

class state;

// A registered callback, intrusive: it lives inside a cancellation_callback or a heap block
// owned by a cancellation_registration. Guarded by its state's lock while linked [I4].
struct callback_node {
  callback_node() noexcept : batch_tag(0), prev_next(nullptr), invoke(nullptr) {}

  // A node that is only ever read after a successful link() (cancellation_callback: its
  // destructor and unregister() read it only when it was stored): link() writes `next` and
  // `prev_next`, so they are left unwritten here, and registering pays no stores for them.
  struct written_by_link {};
  callback_node(void (*fn)(callback_node*), written_by_link) noexcept : invoke(fn) {}

  union {
    callback_node* next;    // while linked [I4]
    std::size_t batch_tag;  // while not linked: its dispatch batch slot, or 0 [I6]
  };
  callback_node** prev_next;  // null <=> not linked [I4]
  void (*invoke)(callback_node*);
};

// A node owned by a type-erased cancellation_registration; `release` destroys the callable and
// frees the block. The dispatcher calls it when the registration was destroyed from inside its
// own running callback (the block must outlive that call).
struct owned_callback_node : callback_node {
  void (*release)(owned_callback_node*) noexcept = nullptr;
};

// Edge parent -> child of a linked source. Owned by the child; linked in the parent's
// `children` list under the parent's lock [I11].
struct parent_link {
  state* parent = nullptr;
  state* child = nullptr;
  parent_link* next = nullptr;
  parent_link** prev_next = nullptr;
};

// Per-state services that live outside the core (timer bookkeeping, std::stop_source bridge, a
// std::stop_token parent). Installed at most once; destroyed with the state.
class state_extension {
 public:
  virtual ~state_extension() = default;
  // Called once, by the thread that requested cancellation, after REQUESTED is published and
  // before any callback runs. Must not throw.
  virtual void on_requested() noexcept = 0;
  // Called once when the state can no longer be cancelled (S23).
  virtual void on_orphaned() noexcept = 0;
};

// What a cancellation request produced. Callback exceptions are reported, never thrown, by the
// core; the public layer decides how to surface them (S12, S13, S15). A request whose callbacks
// throw nothing builds no vector and destroys nothing: `errors` is allocated with the first
// exception, and only an outcome with `first_error` set can own one.
struct dispatch_outcome {
  bool requested = false;  // this call set REQUESTED on the root (S2)
  // Collecting ran out of memory: `errors` holds the first ones only (in order; none, or no
  // vector, if the first could not be stored, which leaves first_error to report).
  bool errors_truncated = false;
  // Owned: every exception, in the order the callbacks ran; null until the first one.
  std::vector<std::exception_ptr>* errors = nullptr;
  std::exception_ptr first_error;  // first exception any callback threw

  dispatch_outcome() = default;
  dispatch_outcome(dispatch_outcome&& other) noexcept
      : requested(other.requested),
        errors_truncated(other.errors_truncated),
        errors(std::exchange(other.errors, nullptr)),
        first_error(std::move(other.first_error)) {}
  dispatch_outcome& operator=(dispatch_outcome&&) = delete;
  // The exceptions to report, in run order: all that were collected, or first_error alone when
  // collecting ran out of memory before it stored one. Leaves `errors` empty. Throws
  // std::bad_alloc only if that one-element list cannot be allocated.
  std::vector<std::exception_ptr> take_errors() {
    std::vector<std::exception_ptr> taken;
    if (errors != nullptr) taken = std::move(*errors);
    if (taken.empty()) taken.push_back(first_error);
    return taken;
  }
  // Tests first_error, not `errors`: the caller has just tested it, so with no exception the
  // compiler folds the destruction away.
  ~dispatch_outcome() {
    if (first_error) [[unlikely]] delete errors;
  }
};

// At most this many freed states wait in one thread's cache for reuse (CANCELKIT_STATE_CACHE).
inline constexpr unsigned state_cache_capacity = 16;

enum class link_result { linked, already_requested, cannot_cancel };
enum class wait_result { requested, cannot_cancel, timed_out };

class CANCELKIT_STATE_ALIGNMENT state final {
 public:
  // REQUESTED is bit 0, so the check is one load and one AND, no shift.
  static constexpr std::uint32_t REQUESTED = 1u << 0;
  static constexpr std::uint32_t LOCKED = 1u << 1;
  static constexpr std::uint32_t ORPHANED = 1u << 2;
  static constexpr std::uint32_t WAITERS = 1u << 3;
  static constexpr std::uint32_t DISPATCHING = 1u << 4;  // [I17]

  // The weight of the collective reference of all cancellation_callbacks, and the mask of the
  // unit part of `refs_` [I7] [I8]. No program holds 2^63 (2^31) handles of one state.
  static constexpr std::size_t COLLECTIVE = ~(~std::size_t{0} >> 1);
  static constexpr std::size_t UNITS = ~COLLECTIVE;

  // Dispatch batches [I6] [I18]: `claims_` holds the running slot (bits 0..7) and, for slot j,
  // TAKEN(j) (bit 8 + j), WAITER(j) (bit 24 + j) and RELEASE(j) (bit 40 + j). The model checker
  // uses batches of 2, so that its small tests cross batch ends; the library, 16 (three bits per
  // slot and the running slot fill 56 of the 64 bits).
  static constexpr unsigned BATCH = sync::dispatch_batch;
  static_assert(BATCH >= 1 && BATCH <= 16);
  static constexpr std::uint64_t CLAIM_RUNNING = 0xff;
  static constexpr std::uint64_t claim_taken(unsigned j) noexcept {
    return std::uint64_t{1} << (8 + j);
  }
  static constexpr std::uint64_t claim_waiter(unsigned j) noexcept {
    return std::uint64_t{1} << (24 + j);
  }
  static constexpr std::uint64_t claim_release(unsigned j) noexcept {
    return std::uint64_t{1} << (40 + j);
  }
  // The flags that, found by the fetch_add that ends slot j, need a look: slot j's waiter or
  // release, or the next slot taken back. Shifted left by one per slot.
  static constexpr std::uint64_t claim_attention(unsigned j) noexcept {
    return claim_waiter(j) | claim_release(j) | claim_taken(j + 1);
  }

  // A new state has one reference and one canceller: the creating source handle.
  explicit state(cancelkit::timer_service* timers = nullptr) noexcept : timers_(timers) {}

#if CANCELKIT_STATE_CACHE
  // A state's block comes from this thread's cache of freed ones when it has one, else from the
  // heap (throws std::bad_alloc); a freed block goes to the freeing thread's cache unless that
  // holds state_cache_capacity already. So a source created where one was just destroyed costs
  // no malloc and no free (issue 20).
  static void* operator new(std::size_t size);
  static void operator delete(void* block, std::size_t size) noexcept;
#endif
  state(const state&) = delete;
  state& operator=(const state&) = delete;

  // ---- observation (lock-free) -------------------------------------------------------------

  bool is_requested() const noexcept {
    // acquire: pairs with the release store that published REQUESTED, so everything before the
    // successful cancel() happens-before the caller's next step (S3) and `reason_` is readable [I5].
    return (word_.load(sync::acquire) & REQUESTED) != 0;
  }

  bool can_be_canceled() const noexcept {
    // acquire: a true answer must let the caller see the state as of the orphaning; cheap anyway.
    return (word_.load(sync::acquire) & ORPHANED) == 0;
  }

  // Only meaningful once is_requested() returned true [I5].
  const std::exception_ptr& reason() const noexcept { return reason_; }

  cancelkit::timer_service* timers() const noexcept { return timers_; }

  // ---- reference counting [I7] [I8] ---------------------------------------------------------

  void add_ref() noexcept {
    // relaxed: the caller already holds a reference, so the count cannot be zero and nothing is
    // published by the increment itself (the usual shared_ptr argument).
    refs_.fetch_add(1, sync::relaxed);
  }

  // Takes a reference unless the state is already dying. Used by timers and std parents, which
  // hold no reference of their own.
  bool try_add_ref() noexcept {
    // relaxed: success only proves the memory stays alive; all state that the caller then reads
    // is read under the lock or through acquire loads.
    std::size_t r = refs_.load(sync::relaxed);
    while (r != 0) {
      if (refs_.compare_exchange_weak(r, r + 1, sync::relaxed, sync::relaxed)) return true;
    }
    return false;
  }

  // Drops one reference; frees the state (and, iteratively, parents it kept alive) at zero.
  static void release(state* s) noexcept {
    if (s->drop_ref()) destroy_chain(s);
  }

  // Called by a source handle's destructor before it lets go the usual way. If that handle is the
  // only reference [I7] and the state has no parents (link_count_ is immutable) and no extension
  // (no timer, no std bridge or parent), no other thread can reach the state: no token, no
  // registration, no cancellation_callback (they would hold the collective reference), no child
  // (its link would hold a reference), no dispatcher. Nobody can observe the orphaning either, so
  // the state is freed at once, without touching an atomic. Returns false, changing nothing,
  // otherwise.
  bool try_destroy_sole_owner() noexcept;

  // ~cancellation_source: one source handle lets go (a reference and a canceller).
  static void release_source_handle(state* s) noexcept;
  static void release_shared_source_handle(state* s) noexcept;  // the rest of it

  // ---- cancellers [I10] ---------------------------------------------------------------------

  void add_canceller() noexcept {
    // relaxed: only something that is already a canceller adds one [I10], so the count is not
    // zero and the increment publishes nothing.
    cancellers_.fetch_add(1, sync::relaxed);
  }

  // The caller holds a reference.
  void release_canceller() noexcept;

  // ---- registration (S5–S8, S10) ------------------------------------------------------------

  // Links `n` at the front unless the source is cancelled or cannot be cancelled. `raii` marks a
  // cancellation_callback, counted in raii_ instead of refs_ [I9].
  link_result link(callback_node* n, bool raii) noexcept {
    std::uint32_t w;
    if (!try_lock_from_zero(w)) [[unlikely]] {
      // S6: the caller runs it inline; S7: stores nothing. Neither flag is ever cleared [I2],
      // so the word as found (acquire) decides without the lock.
      if (w & REQUESTED) return link_result::already_requested;
      if (w & ORPHANED) return link_result::cannot_cancel;
      w = lock();  // contended, or a waiter or a dispatch is there
      if (w & (REQUESTED | ORPHANED)) {
        unlock(w);
        return (w & REQUESTED) ? link_result::already_requested : link_result::cannot_cancel;
      }
    }
    push_front(n);
    if (raii) {
      if (!(raii_ & RAII_HOLDS)) {
        // relaxed: the registering caller holds a token, so refs_ > 0 [I7].
        refs_.fetch_add(COLLECTIVE, sync::relaxed);
        raii_ |= RAII_HOLDS;
      }
      ++raii_;  // [I9]
    }
    unlock(w);
    return link_result::linked;
  }

  // S8: true iff this call removed the callback before it started. Never blocks (beyond the
  // short list lock).
  bool unregister(callback_node* n) noexcept {
    std::uint32_t w = lock();
    bool removed = n->prev_next != nullptr;  // [I4]
    if (removed) {
      unlink(n);
    } else {
      std::uint64_t c;
      unsigned j;
      removed = take_back(n, c, j) == slot_state::taken_back;  // pending in a batch [I6]
    }
    unlock(w);
    return removed;
  }

  enum class dispose_result { done, deferred_release };

  // S9/S11: unregister, then wait while the callback runs on another thread. From inside the
  // callback itself it returns at once; with `defer_release` set, the dispatcher then frees the
  // (owned) node after the callback returns, and the result says so. For a cancellation_callback
  // (`raii`), also drops it from raii_'s count [I9] — only after any wait, so the state stays alive.
  // The common case (still linked: unlink, leave [I9], unlock) is small enough to inline into
  // every destructor (~cancellation_callback, ~cancellation_registration); the rest goes through
  // dispose_unlinked().
  dispose_result dispose(callback_node* n, bool raii, bool defer_release) noexcept {
    const std::uint32_t w = lock();
    if (n->prev_next == nullptr) [[unlikely]] return dispose_unlinked(w, n, raii, defer_release);
    if (raii) {
      // A cancellation_callback's destructor: the node ends here, so its fields need not say
      // "not linked" any more (nothing reads them again). Two stores fewer.
      unlink_from_list(n);
    } else {
      unlink(n);  // [I4]: a registration may be disposed (or unregistered) again
    }
    const bool dead = raii && raii_leave(w);
    unlock(w);
    if (dead) [[unlikely]] destroy_chain(this);
    return dispose_result::done;
  }

  // ---- cancellation (S1, S2, S5, S12, S13, S16, S19, S20) ------------------------------------

  // Requests cancellation of `root` with `reason`, runs every callback of it and of every source
  // linked below it, on this thread, without recursion (S20). The caller holds a reference.
  static dispatch_outcome request(state* root, const std::exception_ptr& reason,
                                  bool throw_on_first) noexcept;

  // request() from the point where `root`'s lock is held: `w` is the holder's copy, with neither
  // REQUESTED nor ORPHANED set (so this call makes the request). Returns with the lock released.
  // Always inlined: into request() and into cancel()'s out-of-line part, so that each is one
  // frame.
  [[gnu::always_inline]] static dispatch_outcome request_locked(
      state* root, std::uint32_t w, const std::exception_ptr& reason, bool throw_on_first) noexcept;

  // The idle request [I16], for cancel() without a reason. Takes the lock, then returns
  // IDLE_REQUESTED: this call made the request, and there was nothing more to do (no callback,
  // child, extension or waiter; S1), or IDLE_REFUSED: cancellation was already requested, or the
  // state cannot be cancelled (S2, S23) — both with the lock released; or else the holder's copy
  // of the word, with the lock still held: finish with request_locked(). The two answers have
  // LOCKED set, which a holder's copy never has, so one test tells them from a word (and the
  // answer travels in a register, not through memory). The caller holds a reference.
  static constexpr std::uint32_t IDLE_REQUESTED = LOCKED | REQUESTED;
  static constexpr std::uint32_t IDLE_REFUSED = LOCKED;
  std::uint32_t request_if_idle() noexcept { return request_if_idle_locked(lock()); }

  // request_if_idle() with one attempt at the lock, the compare-exchange from 0
  // (try_lock_from_zero): IDLE_BUSY (LOCKED set too) when that found another thread holding the
  // lock, or a waiter or a dispatch, and nothing was done; cancel() then calls
  // request_if_idle(). So the uncontended cancel() makes no call, and needs no stack frame.
  static constexpr std::uint32_t IDLE_BUSY = LOCKED | WAITERS;
  std::uint32_t try_request_if_idle() noexcept {
    std::uint32_t w;
    if (try_lock_from_zero(w)) [[likely]]
      return request_if_idle_locked(0);
    // S2, S23: REQUESTED and ORPHANED are never cleared [I2]; acquire on that failure.
    return (w & (REQUESTED | ORPHANED)) ? IDLE_REFUSED : IDLE_BUSY;
  }

  // ---- reset (S18) --------------------------------------------------------------------------

  // Removes every registration if cancellation was not requested. The timer part of S18 is the
  // caller's (it holds the timer service's mutex around this call [I12]).
  bool reset_registrations() noexcept;

  // ---- linked sources (S19, S21) ------------------------------------------------------------

  // Attaches this fresh state below `parents` (distinct, non-null). `links` has room for all of
  // them and is owned by this state from now on. Returns the first cancelled parent, if any: the
  // caller then requests cancellation of this state with that parent's reason (S19).
  state* attach_to_parents(parent_link* links, state* const* parents, std::size_t count) noexcept;

  // ---- blocking waits (S23 and the wait API) -------------------------------------------------

  // Blocks until cancellation is requested, the state can no longer be cancelled, or `timeout`
  // (if non-negative) elapsed. A negative timeout means "no timeout". The timeout becomes one
  // steady-clock deadline here, before the first sleep, and every sleep is bounded by that same
  // deadline: a sleep cut short by a signal (EINTR) or a spurious wake-up resumes with the time
  // that is left, so signals cannot postpone the return (issue 16, defect 3). A timeout too
  // large for the clock saturates to the clock's maximum (no overflow).
  wait_result wait(std::chrono::nanoseconds timeout) noexcept;

  // ---- extension ----------------------------------------------------------------------------

  state_extension* extension() const noexcept {
    // acquire: pairs with the release in install_extension, so the extension is constructed.
    return ext_.load(sync::acquire);
  }

  // Installs `e` unless one is already there; returns the installed one (the caller deletes `e`
  // when it lost).
  // Under the lock [I14], so that a request sees it or the installer sees REQUESTED afterwards.
  state_extension* install_extension(state_extension* e) noexcept;

 private:
  ~state() { delete ext_.load(sync::relaxed); }  // relaxed: sole owner at destruction [I8]

  // ---- the lock [I1] ------------------------------------------------------------------------

  // request_if_idle() once the lock is held (`w`: the holder's copy). Inline: cancel() is.
  std::uint32_t request_if_idle_locked(std::uint32_t w) noexcept {
    if (w & (REQUESTED | ORPHANED)) {  // [I2]
      unlock(w);
      return IDLE_REFUSED;
    }
    if ((w & WAITERS) || has_work()) return w;  // the lock stays held
    // [I16]: nothing to do but publish REQUESTED, which this store does (release: S3). `reason_`
    // stays the null it was born with and `dispatcher_` is never read: no callback exists [I5].
    unlock(w | REQUESTED);
    return IDLE_REQUESTED;
  }

  // Returns the holder's copy of the word: its value now, without LOCKED (which only the store
  // of unlock() clears, so the copy can be stored back as it is).
  std::uint32_t lock() noexcept {
    sync::perturb(sync::site::before_lock);
    std::uint32_t w = word_.load(sync::relaxed);
    // acquire: the critical section sees everything the previous holder did before its release
    // store in unlock(). relaxed on failure: lock_contended() retries.
    if (!(w & LOCKED) && word_.compare_exchange_weak(w, w | LOCKED, sync::acquire, sync::relaxed))
        [[likely]]
      return w;
    return lock_contended(w);
  }

  // One attempt at the lock for a caller that expects the word to be 0 (no flag: a source
  // neither cancelled nor orphaned, nobody waiting, no dispatch running), the common case of
  // registering and of cancelling: ONE compare-exchange from 0, with no load before it, so that
  // the line is fetched for writing once even while other threads poll the word [I16], and no
  // load after it (the holder's copy is the 0 it guessed). True: the lock is ours, and the
  // holder's copy is 0. False: nothing changed, and `w` is the word as found.
  bool try_lock_from_zero(std::uint32_t& w) noexcept {
    sync::perturb(sync::site::before_lock);
    w = 0;
    // acquire on success: as in lock(). acquire on failure: a caller may act on a REQUESTED or
    // ORPHANED found here without the lock (neither is ever cleared [I2]), and must then see
    // what happened before it was set (S3, [I5]), as through is_requested().
    return word_.compare_exchange_strong(w, LOCKED, sync::acquire, sync::acquire);
  }

  // The lock's spinning part, out of line so that every uncontended lock() stays small. `w`: the
  // word as last read.
  [[gnu::noinline]] std::uint32_t lock_contended(std::uint32_t w) noexcept {
    for (unsigned spins = 0;; ++spins) {
      if (!(w & LOCKED)) {
        // acquire: the critical section sees everything the previous holder did before its
        // release store in unlock(). relaxed on failure: we retry.
        if (word_.compare_exchange_weak(w, w | LOCKED, sync::acquire, sync::relaxed)) return w;
        continue;
      }
      backoff(spins);
      w = word_.load(sync::relaxed);
    }
  }

  // `w` is the holder's copy of the word (with any flag changes, LOCKED never among them); stores
  // it, which clears LOCKED.
  void unlock(std::uint32_t w) noexcept {
    // release: publishes the critical section (and, with REQUESTED, [I5]) to the next acquirer
    // and to acquire loads in is_requested(). A plain store is enough by [I1].
    word_.store(w, sync::release);
  }

  static void backoff(unsigned spins) noexcept {
    if (spins < 64) {
      sync::spin_pause();
    } else {
#if defined(CANCELKIT_SYNC_RELACY)
      sync::spin_pause();
#else
      std::this_thread::yield();
#endif
    }
  }

  // dispose() of a node that is not linked (`w`: the holder's copy of the word): taken back from
  // the dispatch batch, waited for, disposed from inside its own callback, or long gone [I6]
  // [I18]. Returns with the lock released. Out of line: the linked case is the one that every
  // destructor inlines.
  [[gnu::noinline]] dispose_result dispose_unlinked(std::uint32_t w, callback_node* n, bool raii,
                                                    bool defer_release) noexcept {
    for (;;) {
      std::uint64_t c;
      unsigned j;
      if (take_back(n, c, j) != slot_state::running) break;  // removed now, or not running
      if (dispatcher_ == sync::current_thread()) {
        // S9/S10: disposing from inside its own callback — waiting would deadlock. [I5] makes
        // `dispatcher_` stable once REQUESTED is set, which a batch implies.
        dispose_result r = dispose_result::done;
        if (defer_release) {
          // relaxed: besides the lock holders (us), only the dispatcher writes `claims`, and
          // it is this thread, inside the callback; it reads the flag after the call [I18].
          claims_.store(c | claim_release(j), sync::relaxed);
          r = dispose_result::deferred_release;
        }
        // Cannot free the state: DISPATCHING is set while the callback runs [I17].
        if (raii) static_cast<void>(raii_leave(w));
        unlock(w);
        return r;
      }
      // Another thread runs it: ask for its completion [I18]. The flag only asks for a store
      // that the wait below reads with acquire, so success needs no order of its own (acquire
      // for g++ 12, as in take_back). acquire on failure: a failure that shows the node ran
      // must carry the callback's effects (S9), as take_back's loads do. The comparison with
      // the whole word fails if the dispatcher moved on meanwhile [I6].
      if (claims_.compare_exchange_weak(c, c | claim_waiter(j), sync::acquire, sync::acquire)) {
        const std::size_t tag = n->batch_tag;
        unlock(w);
        sync::perturb(sync::site::dispose_before_wait);
        wait_for_completion(tag);
        if (!raii) return dispose_result::done;
        w = lock();
        break;
      }
      // The dispatcher moved on meanwhile (or a spurious failure): look again.
    }
    const bool dead = raii && raii_leave(w);
    unlock(w);
    if (dead) destroy_chain(this);
    return dispose_result::done;
  }

  // Under the lock: where `n` (not linked) stands in the current dispatch batch [I6], taking it
  // back if it is still pending (S8). `c` receives `claims` as last read, `j` the node's slot.
  // Out of line: only a node that is no longer linked gets here.
  enum class slot_state { not_in_batch, taken_back, running, ran };
  [[gnu::noinline]] slot_state take_back(callback_node* n, std::uint64_t& c,
                                         unsigned& j) noexcept {
    const std::size_t k = n->batch_tag - batch_base_;  // wraps to a huge value for stale tags
    if (k >= BATCH) return slot_state::not_in_batch;
    j = static_cast<unsigned>(k);
    // acquire: if the dispatcher has moved past slot j, its release fetch_add (or a later one
    // of the same release sequence) is what we read, and the callback's effects happen-before
    // our caller's return (S9).
    c = claims_.load(sync::acquire);
    for (;;) {
      const std::uint64_t r = c & CLAIM_RUNNING;
      if (j < r) return slot_state::ran;
      if (j == r) return slot_state::running;
      // Pending: TAKEN(j) removes the node, if r has not reached j meanwhile (the comparison
      // is with the whole word). The dispatcher, whose fetch_add then returns the bit, never
      // touches it again, so success publishes nothing (acquire only because g++ 12 rejects a
      // failure order stronger than the success order). acquire on failure: as above.
      if (claims_.compare_exchange_weak(c, c | claim_taken(j), sync::acquire, sync::acquire)) {
        n->batch_tag = 0;  // a second unregister() or dispose() finds it in no batch (S8)
        return slot_state::taken_back;
      }
    }
  }

  // ---- list helpers (under the lock [I3] [I4]) -----------------------------------------------

  void push_front(callback_node* n) noexcept {
    n->next = head_;
    n->prev_next = &head_;
    if (head_) head_->prev_next = &n->next;
    head_ = n;
  }

  static void unlink(callback_node* n) noexcept {
    unlink_from_list(n);
    n->batch_tag = 0;  // not linked: the union holds the tag [I4] [I6]
    n->prev_next = nullptr;
  }

  // The list part of unlink(), leaving `n`'s own fields as they were.
  static void unlink_from_list(callback_node* n) noexcept {
    *n->prev_next = n->next;
    if (n->next) n->next->prev_next = n->prev_next;
  }

  // S18/S23: every registration is dropped; their unregister() returns false from now on [I4].
  void drop_all_callbacks() noexcept;

  // ---- reference counting internals [I7] [I8] ------------------------------------------------

  // Returns true when the caller must destroy the state.
  bool drop_ref() noexcept {
    sync::perturb(sync::site::before_release);
    std::size_t r = refs_.load(sync::relaxed);
    while ((r & UNITS) > 1) {  // another unit stays: it will be dropped, so no decision here [I8]
      // release: this owner's uses of the state happen-before its destruction by whoever
      // takes the count to zero (that thread's acq_rel decrement continues the release sequence;
      // a sole-owner free's acquire load reads it).
      if (refs_.compare_exchange_weak(r, r - 1, sync::release, sync::relaxed)) return false;
    }
    // The last unit: only under the lock [I8], where the collective reference is decided.
    std::uint32_t w = lock();
    // acq_rel: release as above; acquire so that a destroying thread sees every other owner's
    // last uses before it frees the memory.
    bool dead = refs_.fetch_sub(1, sync::acq_rel) == 1;
    if (!dead && raii_ == RAII_HOLDS) {  // held, and no cancellation_callback stored
      raii_ = 0;
      // acq_rel: as above. Dropping the collective reference is always allowed while no
      // cancellation_callback is stored [I9].
      dead = refs_.fetch_sub(COLLECTIVE, sync::acq_rel) == COLLECTIVE;
    }
    unlock(w);
    return dead && !(w & DISPATCHING);  // [I17]: a dispatch in progress frees it when it ends
  }

  // A cancellation_callback leaves (under the lock). Returns true if the state must be destroyed
  // after unlocking: nothing but the collective reference was left [I8].
  bool raii_leave(std::uint32_t w) noexcept {
    if (--raii_ != RAII_HOLDS) return false;  // others stay, or (never) not held [I9]
    // relaxed: by [I8] a reading of COLLECTIVE under the lock means only the collective reference
    // is left; a racing try_add_ref is caught by the fetch_sub result below. The collective
    // reference is held (RAII_HOLDS), so `refs` is COLLECTIVE iff its unit part is 0: a shift
    // out of the top bit, no 64-bit constant.
    if ((refs_.load(sync::relaxed) << 1) != 0) return false;
    raii_ = 0;
    // acq_rel: see drop_ref.
    const bool dead = refs_.fetch_sub(COLLECTIVE, sync::acq_rel) == COLLECTIVE;
    return dead && !(w & DISPATCHING);  // [I17]
  }

  // Frees `s` and, without recursion, every parent whose last reference was the freed child's
  // link (S20: a 100 000-deep chain freed from its leaf must not overflow the stack).
  static void destroy_chain(state* s) noexcept;

  // ---- cancellation internals ------------------------------------------------------------------

  // Under the lock (`w`: the holder's copy, neither REQUESTED nor ORPHANED set): records the
  // [I5] fields and bumps the waiters' futex word. Publishing REQUESTED is the caller's unlock.
  void record_request(std::uint32_t w, const std::exception_ptr& reason) noexcept;

  // Whether a request has anything to do beyond setting REQUESTED: callbacks, children, an
  // extension [I14] [I16]. Under the lock.
  bool has_work() const noexcept {
    // relaxed: ext_ is written only under this lock [I14].
    return head_ != nullptr || children_ != nullptr || ext_.load(sync::relaxed) != nullptr;
  }

  // The dispatcher's work on one state, entered under its lock with `w` = the holder's copy with
  // REQUESTED and DISPATCHING set (published by the first unlock here, if not yet). Wakes the
  // waiters and tells the extension before any callback, runs the callbacks (S5, S12, S13),
  // claims the children onto `work` (S19, S20), clears DISPATCHING and frees the state if its
  // last reference went meanwhile [I17]. Returns with the lock released; the state may be gone.
  // Always inlined into request_locked(), its one caller, with run_callbacks: one frame for the
  // whole request, so a cancel() with one callback pays one prologue, not three.
  [[gnu::always_inline]] void dispatch(std::uint32_t w, state*& work, dispatch_outcome& out,
                                       bool throw_on_first) noexcept;

  // Wakes blocked waiters and tells the extension (timer, std bridge). Without the lock.
  void announce() noexcept;

  // S5: runs the callbacks, latest first, in batches [I6], until the list is empty. S12/S13:
  // exceptions are collected; with throw_on_first the first one stops the loop and the rest
  // stay linked. Entered and left under the lock; returns the holder's copy of the word. The
  // first batch (one node) is straight code here; the later ones, with their slot array, are
  // run_later_batches(), out of line, so that a cancel() with one callback carries none of
  // their frame.
  [[gnu::always_inline]] std::uint32_t run_callbacks(std::uint32_t w, dispatch_outcome& out,
                                                     bool throw_on_first) noexcept;
  std::uint32_t run_later_batches(std::uint32_t w, dispatch_outcome& out,
                                  bool throw_on_first) noexcept;  // impl/src/state.cpp

  // The first batch [I6]: runs `n`, just taken off the list (`head` already moved past it),
  // alone in slot 0, and ends the batch: signals a waiting disposer, frees a block disposed
  // from inside its callback [I18]. Entered and left under the lock (`w`: the holder's copy,
  // with REQUESTED and DISPATCHING set; the unlock here may be what publishes them).
  [[gnu::always_inline]] std::uint32_t run_first_batch(std::uint32_t w, callback_node* n,
                                                       dispatch_outcome& out) noexcept;

  // [I17]: the dispatcher is done with this state. Under the lock (`w`: the holder's copy);
  // clears DISPATCHING and frees the state if its last reference went meanwhile. Returns with
  // the lock released; the state may be gone.
  [[gnu::always_inline]] void end_dispatch(std::uint32_t w) noexcept;

  static void record_error(dispatch_outcome& out, std::exception_ptr e) noexcept;

  // Runs `n`'s callback; returns whether it threw (the exception is recorded).
  static bool invoke(callback_node* n, dispatch_outcome& out) noexcept;

  // After slot `n` (tag `tag`) ran: what the flags of `c` ask for [I18] — store the tag and wake
  // a waiting disposer, free a block disposed from inside its own callback. Without the lock.
  void end_of_callback(callback_node* n, std::uint64_t c, unsigned slot,
                       std::size_t tag) noexcept;

  // S19/S20: under this state's lock, claims every live child not yet cancelled and pushes it on
  // `work`, with DISPATCHING set in its word instead of a reference [I17].
  void claim_children(state*& work) noexcept;

  // ---- orphaning (S23) -----------------------------------------------------------------------

  static void orphan_chain(state* first) noexcept;

  void orphan(state*& work) noexcept;

  // ---- dispose waiting (S9) ------------------------------------------------------------------

  // Until the callback with tag `tag` has returned [I18].
  void wait_for_completion(std::size_t tag) noexcept;

  // ---- data --------------------------------------------------------------------------------
  //
  // Laid out by use: the first 64 bytes (one cache line: the state is aligned to 64 outside the
  // model checker) hold everything that registering, disposing and a cancel() with a few
  // callbacks touch, so that those touch one line of the state; the second line holds the rest
  // (waiters' futex words, cancellers, the reason, the timers, the parent links).

  // -- line 0: the hot fields
  sync::atomic<std::uint32_t> word_{0};  // [I1] [I2]
  // guarded [I3]. [I7] [I9]: RAII_HOLDS (the collective reference is held) | the number of
  // stored cancellation_callbacks. One word, so that the last one leaving is one decrement and
  // one comparison.
  std::uint32_t raii_ = 0;
  static constexpr std::uint32_t RAII_HOLDS = 1u << 31;
  callback_node* head_ = nullptr;    // guarded [I3] [I4]
  parent_link* children_ = nullptr;  // guarded [I3] [I11]
  sync::atomic<state_extension*> ext_{nullptr};  // [I14]
  sync::atomic<std::size_t> refs_{1};            // [I7] [I8]
  std::size_t batch_base_ = 1;                   // guarded [I3] [I6]: the current batch's first tag
  sync::thread_id dispatcher_{};                 // written once before REQUESTED is published [I5]
  sync::atomic<std::uint64_t> claims_{0};        // the current batch [I6] [I18]

  // -- line 1
  sync::atomic<std::uint32_t> completions_{0};  // futex: the last tag reported [I18]
  sync::atomic<std::uint32_t> events_{0};       // futex: bumped at request and at orphaning
  sync::atomic<std::size_t> cancellers_{1};     // [I10]
  std::exception_ptr reason_;  // written once before REQUESTED is published [I5]

  // immutable after construction / attach_to_parents
  cancelkit::timer_service* const timers_;
  parent_link* links_ = nullptr;
  std::size_t link_count_ = 0;

  state* work_next_ = nullptr;  // [I13]
};

}  // namespace CANCELKIT_CORE_NS
}  // namespace cancelkit::detail
