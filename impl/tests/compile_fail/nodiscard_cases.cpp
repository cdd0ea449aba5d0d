// Compile-fail cases for [[nodiscard]] (issue 21, part 2). Each case discards one result that a
// migrating user must not drop by accident; compiled with -DCASE_name and warnings as errors, it
// must fail with a diagnostic that names `nodiscard` (check_compile_fail.cmake). Without CASE the
// file must compile: every call then uses its result, and the calls that are deliberately not
// [[nodiscard]] (cancel(), request_stop(), dispose()) are discarded, which must stay allowed.
#include <cancelkit/cancelkit.hpp>

#include <chrono>

using namespace cancelkit;

void cases(cancellation_source& s, cancellation_token& t, cancellation_registration& r) {
  auto fn = [] {};
#if defined(CASE_is_cancellation_requested)
  t.is_cancellation_requested();
#elif defined(CASE_can_be_canceled)
  t.can_be_canceled();
#elif defined(CASE_cancellation_reason)
  t.cancellation_reason();
#elif defined(CASE_stop_requested)
  t.stop_requested();
#elif defined(CASE_stop_possible)
  t.stop_possible();
#elif defined(CASE_none)
  cancellation_token::none();
#elif defined(CASE_wait_for)
  t.wait_for(std::chrono::milliseconds(1));
#elif defined(CASE_wait_until)
  t.wait_until(std::chrono::steady_clock::now());
#elif defined(CASE_to_stop_token)
  t.to_stop_token();
#elif defined(CASE_register_callback)
  t.register_callback(fn);
#elif defined(CASE_source_token)
  s.token();
#elif defined(CASE_source_get_token)
  s.get_token();
#elif defined(CASE_source_is_cancellation_requested)
  s.is_cancellation_requested();
#elif defined(CASE_source_stop_requested)
  s.stop_requested();
#elif defined(CASE_source_stop_possible)
  s.stop_possible();
#elif defined(CASE_try_reset)
  s.try_reset();
#elif defined(CASE_registration_unregister)
  r.unregister();
#elif defined(CASE_registration_token)
  r.token();
#elif defined(CASE_callback_unregister)
  cancellation_callback cb(t, fn);
  cb.unregister();
#elif defined(CASE_callback_temporary)
  cancellation_callback(t, fn);  // registers and unregisters at once
#elif defined(CASE_callback_temporary_explicit_type)
  cancellation_callback<decltype(fn)>(t, fn);
#else
  // The control: results used; cancel(), request_stop() and dispose() may be discarded.
  bool any = t.is_cancellation_requested() || t.can_be_canceled() || t.stop_requested() ||
             t.stop_possible() || t.wait_for(std::chrono::milliseconds(0)) ||
             t.wait_until(std::chrono::steady_clock::now()) || s.is_cancellation_requested() ||
             s.stop_requested() || s.stop_possible() || s.try_reset() || r.unregister();
  const std::exception_ptr reason = t.cancellation_reason();
  const std::stop_token st = t.to_stop_token();
  const cancellation_token copies[] = {cancellation_token::none(), s.token(), s.get_token(),
                                       r.token()};
  cancellation_registration kept = t.register_callback(fn);
  cancellation_callback cb(t, fn);
  any = any || cb.unregister() || kept.unregister() || reason != nullptr ||
        st.stop_possible() || copies[0] == copies[1];
  static_cast<void>(any);
  kept.dispose();
  s.cancel();
  s.request_stop();
#endif
}

int main() {
  cancellation_source s;
  cancellation_token t = s.token();
  cancellation_registration r;
  cases(s, t, r);
}
