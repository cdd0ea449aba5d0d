// S16: the reason recorded by the request, and throw_if_cancellation_requested().
#include <cancelkit/cancelkit.hpp>

#include <atomic>
#include <chrono>
#include <exception>
#include <latch>
#include <stop_token>

#include "test_support.hpp"

using namespace cancelkit;
using namespace std::chrono_literals;
using cktest::holds;
using cktest::test_error;

TEST(Reason, NullBeforeTheRequest) {  // S16
  cancellation_source s;
  EXPECT_EQ(s.token().cancellation_reason(), nullptr);
}

TEST(Reason, CancelWithReason_RecordsThatReason) {  // S16
  cancellation_source s;
  const auto reason = std::make_exception_ptr(test_error{1});
  EXPECT_TRUE(s.cancel(cancel_options{.reason = reason}));
  EXPECT_EQ(s.token().cancellation_reason(), reason);
}

TEST(Reason, CancelWithoutReason_RecordsNull) {  // S16
  cancellation_source s;
  s.cancel();
  EXPECT_EQ(s.token().cancellation_reason(), nullptr);
}

TEST(Reason, CancelWithDefaultOptions_RecordsNull) {  // S16
  cancellation_source s;
  s.cancel(cancel_options{});
  EXPECT_EQ(s.token().cancellation_reason(), nullptr);
}

TEST(Reason, LaterCancelWithAnotherReason_DoesNotReplaceIt) {  // S16, S1
  cancellation_source s;
  const auto first = std::make_exception_ptr(test_error{1});
  s.cancel(cancel_options{.reason = first});
  EXPECT_FALSE(s.cancel(cancel_options{.reason = std::make_exception_ptr(test_error{2})}));
  EXPECT_EQ(s.token().cancellation_reason(), first);
}

TEST(Reason, LaterCancelWithReason_AfterCancelWithout_StaysNull) {  // S16, S1
  cancellation_source s;
  s.cancel();
  s.cancel(cancel_options{.reason = std::make_exception_ptr(test_error{2})});
  EXPECT_EQ(s.token().cancellation_reason(), nullptr);
}

TEST(Reason, VisibleInsideCallbacks) {  // S16: once the request is visible
  cancellation_source s;
  const auto t = s.token();
  const auto reason = std::make_exception_ptr(test_error{3});
  std::exception_ptr seen;
  auto reg = t.register_callback([&] { seen = t.cancellation_reason(); });
  s.cancel(cancel_options{.reason = reason});
  EXPECT_EQ(seen, reason);
}

TEST(Reason, VisibleThroughEveryTokenCopy) {  // S16
  cancellation_source s;
  const auto t1 = s.token();
  const auto t2 = t1;
  const auto reason = std::make_exception_ptr(test_error{4});
  cancellation_source copy = s;
  copy.cancel(cancel_options{.reason = reason});
  EXPECT_EQ(t1.cancellation_reason(), reason);
  EXPECT_EQ(t2.cancellation_reason(), reason);
}

TEST(Reason, ConcurrentReader_SeesTheReasonOnceTheRequestIsVisible) {  // S16, S3
  for (int i = 0; i < 200; ++i) {
    cancellation_source s;
    const auto t = s.token();
    const auto reason = std::make_exception_ptr(test_error{i});
    std::latch start(2);
    cktest::bounded_thread canceller([&] {
      start.arrive_and_wait();
      s.cancel(cancel_options{.reason = reason});
    });
    start.arrive_and_wait();
    std::exception_ptr seen;
    ASSERT_TRUE(cktest::eventually([&] {
      if (!t.is_cancellation_requested()) return false;
      seen = t.cancellation_reason();
      return true;
    }));
    EXPECT_EQ(seen, reason) << "iteration " << i;
    EXPECT_EQ(t.cancellation_reason(), reason);
  }
}

TEST(Reason, NoneToken_IsNull) {  // S16
  EXPECT_EQ(cancellation_token::none().cancellation_reason(), nullptr);
}

TEST(Reason, TimerTriggeredCancel_RecordsDeadlineExceeded) {  // S16, S17
  manual_timer_service timers;
  cancellation_source s(timers);
  s.cancel_after(1ms);
  timers.advance(1ms);
  EXPECT_TRUE(holds<deadline_exceeded>(s.token().cancellation_reason()));
}

TEST(Reason, LinkedChild_RecordsTheParentsReason) {  // S16, S19
  cancellation_source a;
  cancellation_source b;
  const auto child = cancellation_source::linked({a.token(), b.token()});
  const auto reason = std::make_exception_ptr(test_error{5});
  b.cancel(cancel_options{.reason = reason});
  EXPECT_EQ(child.token().cancellation_reason(), reason);
}

TEST(Reason, LinkedChild_ParentCancelledWithoutReason_RecordsNull) {  // S16, S19
  cancellation_source parent;
  const auto child = cancellation_source::linked({parent.token()});
  parent.cancel();
  EXPECT_TRUE(child.is_cancellation_requested());
  EXPECT_EQ(child.token().cancellation_reason(), nullptr);
}

TEST(Reason, LinkedChildBornCancelled_RecordsTheParentsReason) {  // S16, S19
  cancellation_source parent;
  const auto reason = std::make_exception_ptr(test_error{6});
  parent.cancel(cancel_options{.reason = reason});
  const auto child = cancellation_source::linked({parent.token()});
  EXPECT_EQ(child.token().cancellation_reason(), reason);
}

TEST(Reason, LinkedGrandchild_RecordsTheRootsReason) {  // S16, S20
  cancellation_source root;
  const auto child = cancellation_source::linked({root.token()});
  const auto grandchild = cancellation_source::linked({child.token()});
  const auto reason = std::make_exception_ptr(test_error{7});
  root.cancel(cancel_options{.reason = reason});
  EXPECT_EQ(grandchild.token().cancellation_reason(), reason);
}

TEST(Reason, LinkedChildOfTimedParent_RecordsDeadlineExceeded) {  // S16, S17, S19
  manual_timer_service timers;
  cancellation_source parent(timers);
  const auto child = cancellation_source::linked({parent.token()});
  parent.cancel_after(1ms);
  timers.advance(1ms);
  EXPECT_TRUE(holds<deadline_exceeded>(child.token().cancellation_reason()));
}

TEST(Reason, LinkedChildCancelledOnItsOwn_RecordsItsOwnReason) {  // S16, S19
  cancellation_source parent;
  auto child = cancellation_source::linked({parent.token()});
  const auto own = std::make_exception_ptr(test_error{8});
  child.cancel(cancel_options{.reason = own});
  parent.cancel(cancel_options{.reason = std::make_exception_ptr(test_error{9})});
  EXPECT_EQ(child.token().cancellation_reason(), own);
  EXPECT_NE(parent.token().cancellation_reason(), own);
}

TEST(Reason, LinkedToStopToken_RecordsNull) {  // S16, S22
  std::stop_source stop;
  const auto child = cancellation_source::linked(stop.get_token());
  stop.request_stop();
  EXPECT_TRUE(child.is_cancellation_requested());
  EXPECT_EQ(child.token().cancellation_reason(), nullptr);
}

TEST(ThrowIfCancellationRequested, ThrowsOperationCanceledCarryingTheToken) {  // S16
  cancellation_source s;
  const auto t = s.token();
  s.cancel();
  try {
    t.throw_if_cancellation_requested();
    FAIL() << "did not throw";
  } catch (const operation_canceled& e) {
    EXPECT_TRUE(e.token() == t);
    EXPECT_STREQ(e.what(), "operation canceled");
  }
}

TEST(ThrowIfCancellationRequested, ThrowsOperationCanceledEvenWithAReason) {  // S16
  cancellation_source s;
  const auto t = s.token();
  s.cancel(cancel_options{.reason = std::make_exception_ptr(test_error{1})});
  EXPECT_THROW(t.throw_if_cancellation_requested(), operation_canceled);
}

TEST(ThrowIfCancellationRequested, NotCancelled_DoesNotThrow) {  // S16
  cancellation_source s;
  EXPECT_NO_THROW(s.token().throw_if_cancellation_requested());
}

TEST(ThrowIfCancellationRequested, NoneToken_DoesNotThrow) {  // S16
  EXPECT_NO_THROW(cancellation_token::none().throw_if_cancellation_requested());
}
