// cancelkit/detail/orphan_watch.hpp — being told that a source can no longer be cancelled.
//
// wait() learns that its token became unable to be cancelled (S23) from the core's orphan path:
// orphan() sets ORPHANED, wakes the waiters and then calls the state's extension's
// on_orphaned(). A suspended coroutine cannot sleep on the waiters' futex, so cancelled(token)
// (coroutine.hpp) listens on that same orphan path, through the extension: it lists an
// orphan_watch there, and on_orphaned() claims and resumes each listed watch. Nothing about the
// orphaning itself is decided here; it is the one the core already made.
#pragma once

#include <cancelkit/detail/state.hpp>

namespace cancelkit::detail {

// Intrusive, guarded by the extension's mutex while listed.
struct orphan_watch {
  orphan_watch* next = nullptr;
  orphan_watch** prev_next = nullptr;  // null <=> not listed
  // Called by the orphaning thread under the extension's mutex, right after the watch was taken
  // off the list: returns true when the caller is to call `resume` (after releasing the mutex).
  // A watch whose `claim` returned false is never touched again.
  bool (*claim)(orphan_watch&) noexcept = nullptr;
  void (*resume)(orphan_watch&) noexcept = nullptr;
};

enum class watch_result { watching, orphaned };

// Lists `w` on `s` unless `s` can no longer be cancelled (then `orphaned`, listing nothing).
// Installs `s`'s extension on first use: throws std::bad_alloc, listing nothing. The caller holds
// a reference on `s`. Defined in impl/src/source_extension.cpp.
watch_result watch_orphaning(state* s, orphan_watch& w);

// Takes `w` off `s`'s list if it is still there. Once it returns, the orphaning thread no longer
// touches `w` unless its `claim` returned true. Never blocks beyond the extension's mutex.
void unwatch_orphaning(state* s, orphan_watch& w) noexcept;

}  // namespace cancelkit::detail
