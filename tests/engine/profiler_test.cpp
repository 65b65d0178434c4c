// engine::profiler on the host clock: which ranges a step records (each op once, only the
// outermost range, backward nodes by name), that they never overlap and sum to the busy time,
// the session's rules (one at a time, its own thread only, ranges that straddle its start or
// end), and the two reports (the text table and Chrome's trace JSON).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <optional>
#include <thread>

#include "engine/profiler.h"
#include "tests/common/check.h"

using namespace engine;
using profiler::OpTotal;
using profiler::Phase;
using profiler::Range;
using profiler::Session;
using testing_util::expect_error;
using testing_util::random;

namespace {

// calls of (name, phase) in the profile, 0 when absent.
int64_t calls(const profiler::Profile& p, const std::string& name, Phase phase) {
  for (const OpTotal& t : p.totals())
    if (t.name == name && t.phase == phase) return t.calls;
  return 0;
}

void busy_wait(std::chrono::microseconds d) {
  const auto end = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < end) {
  }
}

}  // namespace

TEST(Profiler, RecordsEachOpOnceForwardAndBackward) {
  Tensor x = random({6, 5}, 1);
  Tensor w = random({4, 5}, 2).requires_grad_();
  Tensor b = random({4}, 3).requires_grad_();
  Tensor target = random({6, 4}, 4);

  Session session;
  Tensor loss = mse_loss(gelu(linear(x, w, b)), target);
  loss.backward();
  const profiler::Profile p = session.stop();

  EXPECT_EQ(calls(p, "linear", Phase::Forward), 1);
  EXPECT_EQ(calls(p, "gelu", Phase::Forward), 1);
  EXPECT_EQ(calls(p, "mse_loss", Phase::Forward), 1);
  // mse_loss is sub, mul and mean inside: inside its range, so not counted on their own...
  EXPECT_EQ(calls(p, "sub", Phase::Forward), 0);
  EXPECT_EQ(calls(p, "mul", Phase::Forward), 0);
  // ...but their autograd nodes run in the backward, each one named after its node.
  EXPECT_EQ(calls(p, "linear", Phase::Backward), 1);
  EXPECT_EQ(calls(p, "gelu", Phase::Backward), 1);
  EXPECT_EQ(calls(p, "sub", Phase::Backward), 1);
  EXPECT_EQ(calls(p, "mul", Phase::Backward), 2);  // d * d, and the mean's 1/n
  EXPECT_EQ(calls(p, "sum", Phase::Backward), 1);
  EXPECT_EQ(p.dropped(), 0);

  // Outermost ranges only: sorted by start, each starts after the previous one ended.
  double sum = 0, end = 0;
  for (const profiler::Event& e : p.events()) {
    EXPECT_GE(e.start_us, end) << e.name;
    EXPECT_GE(e.duration_us, 0) << e.name;
    // A CPU session has one clock: the host's times are the same numbers.
    EXPECT_EQ(e.host_start_us, e.start_us);
    EXPECT_EQ(e.host_duration_us, e.duration_us);
    end = e.start_us + e.duration_us;
    sum += e.duration_us;
  }
  EXPECT_EQ(p.host_span_us(), p.span_us());
  EXPECT_DOUBLE_EQ(p.host_busy_us(), p.busy_us());
  EXPECT_LE(end, p.span_us());
  EXPECT_DOUBLE_EQ(p.busy_us(), sum);
  double total = 0;
  int64_t n = 0;
  for (const OpTotal& t : p.totals()) {
    total += t.total_us;
    n += t.calls;
  }
  EXPECT_NEAR(total, sum, 1e-9 * sum);
  EXPECT_EQ(n, static_cast<int64_t>(p.events().size()));
}

TEST(Profiler, AnInnerRangeIsPartOfTheOuterOne) {
  Session session;
  {
    Range outer("outer");
    busy_wait(std::chrono::microseconds(300));
    {
      Range inner("inner", Phase::Backward);
      busy_wait(std::chrono::microseconds(2000));
    }
  }
  { Range next("next", Phase::Optimizer); }
  const profiler::Profile p = session.stop();
  ASSERT_EQ(p.events().size(), 2u);
  EXPECT_STREQ(p.events()[0].name, "outer");
  EXPECT_GE(p.events()[0].duration_us, 2300);
  EXPECT_STREQ(p.events()[1].name, "next");
  EXPECT_EQ(p.events()[1].phase, Phase::Optimizer);
  // Largest total first.
  ASSERT_EQ(p.totals().size(), 2u);
  EXPECT_EQ(p.totals()[0].name, "outer");
}

TEST(Profiler, WithoutASessionNothingIsRecordedAndRangesAreInert) {
  EXPECT_FALSE(profiler::active());
  { Range r("before"); }
  Session session;
  EXPECT_TRUE(profiler::active());
  const profiler::Profile p = session.stop();
  EXPECT_FALSE(profiler::active());
  EXPECT_TRUE(p.events().empty());
  EXPECT_GE(p.span_us(), 0);
}

TEST(Profiler, OneSessionAtATimeAndStopOnce) {
  {
    Session a;
    expect_error([] { Session b; }, {"profiler", "already open"});
    a.stop();
    expect_error([&] { a.stop(); }, {"already stopped"});
  }
  Session again;  // the first one is closed: a new one may open
  again.stop();
  {
    Session closed_by_destructor;
  }
  Session after;
  EXPECT_TRUE(profiler::active());
}

TEST(Profiler, RangesThatStraddleTheSessionAreNotTimedAndDoNotConfuseTheNextOnes) {
  std::optional<Session> session;
  {
    Range early("opened before the session");
    session.emplace();
    { Range inside("inside"); }  // `early` was not counted, so this one is outermost
  }
  std::optional<Range> late;
  late.emplace("closed after the session");
  const profiler::Profile p = session->stop();
  late.reset();  // its session has ended: nothing happens
  ASSERT_EQ(p.events().size(), 1u);
  EXPECT_STREQ(p.events()[0].name, "inside");

  Session next;
  { Range r("first of the next session"); }
  const profiler::Profile q = next.stop();
  ASSERT_EQ(q.events().size(), 1u);  // depth was reset: the range is outermost again
}

TEST(Profiler, OnlyTheSessionsThreadIsRecorded) {
  Session session;
  std::thread other([] {
    EXPECT_FALSE(profiler::active());
    Range r("another thread");
    Tensor y = gelu(random({8}, 5));
  });
  other.join();
  { Range r("this thread"); }
  const profiler::Profile p = session.stop();
  ASSERT_EQ(p.events().size(), 1u);
  EXPECT_STREQ(p.events()[0].name, "this thread");
}

TEST(Profiler, StoppedOnAnotherThreadTheOpenerRecordsNoMore) {
  std::optional<Session> session;
  session.emplace();
  { Range r("before the stop"); }
  profiler::Profile p;
  std::thread other([&] { p = session->stop(); });
  other.join();
  EXPECT_FALSE(profiler::active());
  { Range r("after the stop"); }  // this thread still holds the session's number: ignored
  ASSERT_EQ(p.events().size(), 1u);
  EXPECT_STREQ(p.events()[0].name, "before the stop");
  Session next;  // and a new session can open
  EXPECT_TRUE(profiler::active());
}

TEST(Profiler, AnOpThatThrowsClosesItsRange) {
  Session session;
  expect_error([] { matmul(random({2, 3}, 1), random({4, 5}, 2)); }, {"matmul"});
  Tensor y = gelu(random({8}, 3));
  const profiler::Profile p = session.stop();
  EXPECT_EQ(calls(p, "matmul", Phase::Forward), 1);
  EXPECT_EQ(calls(p, "gelu", Phase::Forward), 1);  // still outermost after the unwinding
}

TEST(Profiler, DepthwiseAndDenseConvolutionsAreTimedApart) {
  Tensor x = random({1, 6, 6, 4}, 1).requires_grad_();
  Tensor dw = random({4, 3, 3, 1}, 2).requires_grad_();
  Tensor w = random({5, 1, 1, 4}, 3).requires_grad_();
  Session session;
  using engine::Conv2dParams;
  Tensor h = conv2d(x, dw, Tensor(), Conv2dParams::make(1, 1, 1, /*groups=*/4));
  Tensor y = conv2d(h, w, Tensor(), Conv2dParams::make());
  sum(y, {0, 1, 2, 3}).backward();
  const profiler::Profile p = session.stop();
  for (Phase ph : {Phase::Forward, Phase::Backward}) {
    EXPECT_EQ(calls(p, "depthwise_conv2d", ph), 1);
    EXPECT_EQ(calls(p, "conv2d", ph), 1);
  }
}

TEST(Profiler, TableListsTheLargestOpsAndSumsTheRest) {
  Session session;
  for (const char* name : {"a", "b", "c"}) {
    Range r(name);
    busy_wait(std::chrono::microseconds(name[0] == 'b' ? 1500 : 200));
  }
  const profiler::Profile p = session.stop();
  const std::string t = p.table(1);
  EXPECT_NE(t.find("op"), std::string::npos);
  EXPECT_NE(t.find("\nb "), std::string::npos) << t;  // the largest, by name
  EXPECT_EQ(t.find("\na "), std::string::npos) << t;  // summed into the next line
  EXPECT_NE(t.find("(2 more ops)"), std::string::npos) << t;
  EXPECT_NE(t.find("gap (outside ops)"), std::string::npos) << t;
  EXPECT_NE(t.find("span (host clock)"), std::string::npos) << t;
  EXPECT_EQ(t.find("host ms"), std::string::npos) << "a CPU session has no second clock\n" << t;
}

TEST(Profiler, ChromeTraceIsJsonWithOneCompleteEventPerRange) {
  Tensor w = random({3, 3}, 1).requires_grad_();
  Session session;
  sum(relu(matmul(random({2, 3}, 2), w)), {0, 1}).backward();
  const profiler::Profile p = session.stop();
  const nlohmann::json trace = nlohmann::json::parse(p.chrome_trace());
  size_t complete = 0;
  for (const auto& e : trace.at("traceEvents")) {
    if (e.at("ph") != "X") continue;
    const profiler::Event& ev = p.events()[complete++];
    EXPECT_EQ(e.at("name").get<std::string>(), ev.name);
    EXPECT_EQ(e.at("cat").get<std::string>(), profiler::phase_name(ev.phase));
    EXPECT_EQ(e.at("tid").get<int>(), static_cast<int>(ev.phase));
    EXPECT_NEAR(e.at("ts").get<double>(), ev.start_us, 1e-3);
    EXPECT_NEAR(e.at("dur").get<double>(), ev.duration_us, 1e-3);
  }
  EXPECT_EQ(complete, p.events().size());
  EXPECT_GE(complete, 6u);  // matmul, relu, sum forward and backward

  // An empty session is valid JSON too (no trailing comma after the track names).
  Session empty;
  EXPECT_NO_THROW(nlohmann::json::parse(empty.stop().chrome_trace()));
}
