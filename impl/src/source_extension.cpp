// The per-source services outside the core: timer entry, std::stop_source bridge, std parent.
#include "source_extension.hpp"

#include <utility>

namespace cancelkit::detail {

source_extension::source_extension(state* owner, timer_service& service) noexcept
    : timer_entry(&timer_access::take, &timer_access::fire_entry),
      owner_(owner),
      service_(service) {}

source_extension::~source_extension() {
  // The owner is being freed: nothing can observe it any more, so the timer just goes (S17),
  // and the std parent's callback is deregistered (its destructor waits if it is running; the
  // running trigger fails try_add_ref and returns, so this cannot deadlock).
  timer_access::forget(*this);
}

void source_extension::on_requested() noexcept {
  // A cancelled source needs no timer: free the entry now instead of when it would have fired.
  timer_access::disarm(*this);
  std::optional<std::stop_source> to_request;
  {
    std::lock_guard<sync::mutex> lock(bridge_mutex_);
    // A copy: request_stop() runs std callbacks, so not under our mutex.
    to_request = bridge_.get();
  }
  if (to_request && !to_request->request_stop()) {
    // [B6]: a to_stop_token() won the request and may still be running the std callbacks,
    // std-linked children included: cancel() must not return before they are done (S20).
    for (;;) {
      // acquire: pairs with the winner's release, so its callbacks' effects happen-before
      // this canceller's return.
      if (bridge_requested_.load(sync::acquire) != 0) break;
      sync::wait_on(bridge_requested_, 0);
    }
  }
}

void source_extension::request_bridge(std::stop_source& b) noexcept {
  std_trigger_scope scope;  // sources linked to it are cancelled before we return [B5]
  if (!b.request_stop()) return;  // requested already: by the canceller, or by another call
  // release: the std callbacks this call ran happen-before a waiting canceller's return [B6].
  bridge_requested_.store(1, sync::release);
  sync::wake_all(bridge_requested_);
}

void source_extension::on_orphaned() noexcept {
  std::optional<std::stop_source> dropped;
  {
    std::lock_guard<sync::mutex> lock(bridge_mutex_);
    orphaned_.set(true);
    dropped.swap(bridge_.write());
  }
  // `dropped` goes out of scope outside the lock: with the last stop_source gone, every
  // std::stop_token handed out reports stop_possible() == false (S23 mirrored).
  //
  // S23 for coroutines in cancelled(token): one watch at a time, claimed under the mutex and
  // resumed outside it (it runs user code), so that a coroutine resumed here may destroy another
  // that is still listed: that one's destructor withdraws it first ([C3] in coroutine.hpp).
  // No watch can be added from now on (`orphaned_` is set), so the loop ends.
  for (;;) {
    orphan_watch* claimed = nullptr;
    {
      std::lock_guard<sync::mutex> lock(bridge_mutex_);
      orphan_watch* w = watchers_.get();
      if (w == nullptr) break;
      watchers_.set(w->next);
      if (w->next != nullptr) w->next->prev_next = w->prev_next;
      w->next = nullptr;
      w->prev_next = nullptr;
      if (w->claim(*w)) claimed = w;
    }
    if (claimed != nullptr) claimed->resume(*claimed);  // may free `claimed`
  }
}

watch_result source_extension::watch(orphan_watch& w) {
  std::lock_guard<sync::mutex> lock(bridge_mutex_);
  // The second test covers an extension installed after the orphaning looked for one (as in
  // bridge()): under the state's lock, either the installer came first and on_orphaned() will
  // see this extension, or the orphaning came first and its ORPHANED is visible now.
  if (orphaned_.get() || !owner_->can_be_canceled()) return watch_result::orphaned;
  orphan_watch* head = watchers_.get();
  w.next = head;
  w.prev_next = &watchers_.write();
  if (head != nullptr) head->prev_next = &w.next;
  watchers_.set(&w);
  return watch_result::watching;
}

void source_extension::unwatch(orphan_watch& w) noexcept {
  std::lock_guard<sync::mutex> lock(bridge_mutex_);
  if (w.prev_next == nullptr) return;  // taken off by on_orphaned(), under this mutex
  *w.prev_next = w.next;
  if (w.next != nullptr) w.next->prev_next = w.prev_next;
  w.next = nullptr;
  w.prev_next = nullptr;
}

watch_result watch_orphaning(state* s, orphan_watch& w) { return extension_of(s).watch(w); }

void unwatch_orphaning(state* s, orphan_watch& w) noexcept {
  // Listed only through an installed extension, which lives as long as `s` [I14].
  if (state_extension* e = s->extension()) static_cast<source_extension&>(*e).unwatch(w);
}

std::stop_source source_extension::bridge() {
  std::lock_guard<sync::mutex> lock(bridge_mutex_);
  // The second test covers an extension installed after the orphaning looked for one.
  if (orphaned_.get() || !owner_->can_be_canceled()) return std::stop_source(std::nostopstate);
  std::optional<std::stop_source>& b = bridge_.write();
  if (!b) b.emplace();
  return *b;
}

void source_extension::attach_std_parent(const std::stop_token& parent) {
  // The std parent counts as a canceller for as long as the source exists: a std::stop_token
  // cannot tell us when its last stop_source goes away.
  owner_->add_canceller();
  // May run the trigger right here if the parent is already requested: born cancelled (S19),
  // also when linked() is called from a callback inside a drain [B5].
  std_trigger_scope scope;
  std_parent_.emplace(parent, std_parent_trigger{this});
}

// A drain's FIFO of queued extensions, intrusive through deferred_next_ [B1] [B3].
struct std_drain_queue {
  source_extension* head = nullptr;
  source_extension** tail = &head;
};

void std_parent_trigger::operator()() const noexcept {
  if (!child->owner()->try_add_ref()) return;  // being destroyed: nobody can observe it
  if (std_drain_queue* queue = active_drain()) {
    // A drain runs on this thread, further up the stack [B3]: queue the source with the
    // reference just taken [B2]; the drain cancels it after the current one, at its own depth.
    child->deferred_next_.set(nullptr);  // [B1]: queued at most once, so the field is free
    *queue->tail = child;
    queue->tail = &child->deferred_next_.write();
    return;
  }
  // The outermost trigger on this thread: become the drain [B3] and empty the queue before
  // returning [B4]. Sources queued while one is cancelled are taken in FIFO order.
  std_drain_queue queue;
  active_drain() = &queue;
  source_extension* next = child;
  while (next != nullptr) {
    state* s = next->owner();
    timer_service& service = next->service();
    // S22: reason null. Not cancel_in_background: its scope would hide this drain, and the
    // triggers this request fires would recurse instead of queueing [B5].
    dispatch_outcome out = state::request(s, nullptr, /*throw_on_first=*/false);
    if (out.first_error) timer_access::report(service, std::move(out));  // S15
    state::release(s);  // [B2]; `next` may be gone now
    next = queue.head;
    if (next != nullptr) {
      queue.head = next->deferred_next_.get();
      if (queue.head == nullptr) queue.tail = &queue.head;
    }
  }
  active_drain() = nullptr;  // it was null on entry (else we would have queued)
}

void cancel_in_background(state* s, const std::exception_ptr& reason,
                          timer_service& service) noexcept {
  std_trigger_scope scope;  // [B5]: e.g. a manual timer advanced from a callback inside a drain
  dispatch_outcome out = state::request(s, reason, /*throw_on_first=*/false);
  if (out.first_error) timer_access::report(service, std::move(out));
}

source_extension& extension_of(state* s) {
  if (state_extension* e = s->extension()) return static_cast<source_extension&>(*e);
  timer_service& service = s->timers() != nullptr ? *s->timers() : system_timer_service();
  auto* fresh = new source_extension(s, service);
  state_extension* installed = s->install_extension(fresh);
  if (installed != fresh) delete fresh;  // another thread was first
  return static_cast<source_extension&>(*installed);
}

}  // namespace cancelkit::detail
