// Cross-loop conformance: asyncio's StreamReader fed by hand (CPython 3.14
// Lib/test/test_asyncio/test_streams.py, StreamTests: the cases that feed a
// reader directly; each case names the test it mirrors). The network cases
// (open_connection, start_server, both loops) are in
// tests/conformance/network_test.cc.
#include <stdexcept>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "twinloop/api/twinloop.h"
#include "twinloop/tests/conformance/loop_fixture.h"

namespace twinloop::conformance {
namespace {

using ::testing::HasSubstr;

constexpr char kData[] = "line1\nline2\nline3\n";

class StreamReaderConformance : public LoopTest {};

// Feeds `data` one iteration from now.
void feed_soon(StreamReader r, std::string data) {
  get_running_loop().call_soon([r, data]() mutable { r.feed_data(data); });
}
void feed_eof_soon(StreamReader r) {
  get_running_loop().call_soon([r]() mutable { r.feed_eof(); });
}

// test_read_zero: read(0) returns b'' at once and consumes nothing.
TEST_P(StreamReaderConformance, ReadZero) {
  run([]() -> Coro<void> {
    StreamReader r;
    r.feed_data(kData);
    EXPECT_EQ(co_await r.read(0), "");
    EXPECT_EQ(r.buffered(), sizeof(kData) - 1);
  }());
}

// test_read: read(n) waits for data, then returns what arrived (up to n).
TEST_P(StreamReaderConformance, ReadWaitsForData) {
  run([]() -> Coro<void> {
    StreamReader r;
    feed_soon(r, kData);
    EXPECT_EQ(co_await r.read(30), kData);
    EXPECT_EQ(r.buffered(), 0u);
  }());
}

// test_read_line_breaks: read(n) returns at most n bytes of what is there.
TEST_P(StreamReaderConformance, ReadReturnsAtMostN) {
  run([]() -> Coro<void> {
    StreamReader r;
    r.feed_data("line1");
    r.feed_data("line2");
    EXPECT_EQ(co_await r.read(5), "line1");
    EXPECT_EQ(r.buffered(), 5u);
  }());
}

// test_read_eof: read(n) at EOF returns b''.
TEST_P(StreamReaderConformance, ReadAtEofReturnsEmpty) {
  run([]() -> Coro<void> {
    StreamReader r;
    feed_eof_soon(r);
    EXPECT_EQ(co_await r.read(1024), "");
    EXPECT_TRUE(r.at_eof());
  }());
}

// test_read_until_eof: read() (n < 0) reads everything to EOF.
TEST_P(StreamReaderConformance, ReadAllUntilEof) {
  run([]() -> Coro<void> {
    StreamReader r;
    get_running_loop().call_soon([r]() mutable {
      r.feed_data("chunk1\n");
      r.feed_data("chunk2");
      r.feed_eof();
    });
    EXPECT_EQ(co_await r.read(-1), "chunk1\nchunk2");
    EXPECT_EQ(r.buffered(), 0u);
  }());
}

// test_read_exception: a stored exception is raised before buffered data.
TEST_P(StreamReaderConformance, ReadRaisesTheStoredExceptionFirst) {
  run([]() -> Coro<void> {
    StreamReader r;
    r.feed_data("line\n");
    EXPECT_EQ(co_await r.read(2), "li");
    r.set_exception(std::make_exception_ptr(std::invalid_argument("boom")));
    bool raised = false;
    try {
      co_await r.read(2);
    } catch (const std::invalid_argument& e) {
      raised = std::string(e.what()) == "boom";
    }
    EXPECT_TRUE(raised);
  }());
}

// test_read_limit: read(-1) is not bounded by the limit.
TEST_P(StreamReaderConformance, ReadAllIsNotBoundedByTheLimit) {
  run([]() -> Coro<void> {
    StreamReader r(3);
    r.feed_data("chunk");
    r.feed_eof();
    EXPECT_EQ(co_await r.read(-1), "chunk");
  }());
}

// test_readline: a line spread over several chunks.
TEST_P(StreamReaderConformance, ReadlineAcrossChunks) {
  run([]() -> Coro<void> {
    StreamReader r;
    r.feed_data("chunk1 ");
    get_running_loop().call_soon([r]() mutable {
      r.feed_data("chunk2 ");
      r.feed_data("chunk3 ");
      r.feed_data("\n chunk4");
    });
    EXPECT_EQ(co_await r.readline(), "chunk1 chunk2 chunk3 \n");
    EXPECT_EQ(r.buffered(), std::string(" chunk4").size());
  }());
}

// test_readline_limit_with_existing_data: a line over the limit raises
// ValueError (std::invalid_argument) and is dropped through its separator.
TEST_P(StreamReaderConformance, ReadlineOverTheLimitIsDropped) {
  run([]() -> Coro<void> {
    StreamReader r(3);
    r.feed_data("li");
    r.feed_data("ne1\nline2\n");
    bool value_error = false;
    try {
      co_await r.readline();
    } catch (const std::invalid_argument&) {
      value_error = true;
    }
    EXPECT_TRUE(value_error);
    // The buffer lost the long line only.
    EXPECT_EQ(co_await r.read(6), "line2\n");
  }());
}

// test_readline_limit: with no separator in sight, the whole buffer goes.
TEST_P(StreamReaderConformance, ReadlineOverTheLimitWithoutSeparatorClearsTheBuffer) {
  run([]() -> Coro<void> {
    StreamReader r(7);
    get_running_loop().call_soon([r]() mutable {
      r.feed_data("chunk1");
      r.feed_data("chunk2");
      r.feed_data("chunk3\n");
      r.feed_eof();
    });
    bool value_error = false;
    try {
      co_await r.readline();
    } catch (const std::invalid_argument&) {
      value_error = true;
    }
    EXPECT_TRUE(value_error);
    EXPECT_EQ(r.buffered(), 0u);
  }());
}

// test_readline_eof: at EOF the partial line is returned.
TEST_P(StreamReaderConformance, ReadlineAtEofReturnsThePartialLine) {
  run([]() -> Coro<void> {
    StreamReader r;
    r.feed_data("some data");
    r.feed_eof();
    EXPECT_EQ(co_await r.readline(), "some data");
    EXPECT_EQ(co_await r.readline(), "");
  }());
}

// test_readline_read_byte_count: lines, then the rest with read(n).
TEST_P(StreamReaderConformance, ReadlineThenRead) {
  run([]() -> Coro<void> {
    StreamReader r;
    r.feed_data(kData);
    EXPECT_EQ(co_await r.readline(), "line1\n");
    EXPECT_EQ(co_await r.read(7), "line2\nl");
    EXPECT_EQ(co_await r.readline(), "ine3\n");
  }());
}

// test_readuntil_multi_chunks: a multi-byte separator split across chunks.
TEST_P(StreamReaderConformance, ReaduntilMultiByteSeparatorAcrossChunks) {
  run([]() -> Coro<void> {
    StreamReader r;
    r.feed_data("lineAAA");
    EXPECT_EQ(co_await r.readuntil(std::string("AAA")), "lineAAA");
    r.feed_data("lineAAA");
    EXPECT_EQ(co_await r.readuntil(std::string("AAA")), "lineAAA");
    r.feed_data("lineAAAxxx");
    EXPECT_EQ(co_await r.readuntil(std::string("AAA")), "lineAAA");
    EXPECT_EQ(r.buffered(), 3u);
    StreamReader s;
    s.feed_data("QWEaa");
    get_running_loop().call_soon([s]() mutable {
      s.feed_data("XYaa");
      s.feed_data("a");
    });
    EXPECT_EQ(co_await s.readuntil(std::string("aaa")), "QWEaaXYaaa");
  }());
}

// test_readuntil_eof: at EOF without a separator: IncompleteReadError with
// the partial data and expected None, and the buffer is cleared.
TEST_P(StreamReaderConformance, ReaduntilAtEofRaisesIncompleteRead) {
  run([]() -> Coro<void> {
    StreamReader r;
    r.feed_data("some dataAA");
    r.feed_eof();
    bool raised = false;
    try {
      co_await r.readuntil(std::string("AAA"));
    } catch (const IncompleteReadError& e) {
      raised = true;
      EXPECT_EQ(e.partial(), "some dataAA");
      EXPECT_FALSE(e.expected().has_value());
      EXPECT_STREQ(e.what(), "11 bytes read on a total of None expected bytes");
    }
    EXPECT_TRUE(raised);
    EXPECT_EQ(r.buffered(), 0u);
  }());
}

// test_readuntil_limit_found_sep: LimitOverrunError, data left in the buffer.
TEST_P(StreamReaderConformance, ReaduntilLimitOverrunKeepsTheData) {
  run([]() -> Coro<void> {
    StreamReader r(3);
    r.feed_data("some dataAA");
    bool raised = false;
    try {
      co_await r.readuntil(std::string("AAA"));
    } catch (const LimitOverrunError& e) {
      raised = true;
      EXPECT_THAT(e.what(), HasSubstr("not found"));
    }
    EXPECT_TRUE(raised);
    EXPECT_EQ(r.buffered(), 11u);
    r.feed_data("A");
    raised = false;
    try {
      co_await r.readuntil(std::string("AAA"));
    } catch (const LimitOverrunError& e) {
      raised = true;
      EXPECT_THAT(e.what(), HasSubstr("is found"));
      EXPECT_EQ(e.consumed(), 9u);  // where the separator starts
    }
    EXPECT_TRUE(raised);
    EXPECT_EQ(r.buffered(), 12u);
  }());
}

// test_readuntil_multiple_separators (3.13): the match that ends first wins.
TEST_P(StreamReaderConformance, ReaduntilSeveralSeparatorsEarliestEndWins) {
  run([]() -> Coro<void> {
    StreamReader r;
    r.feed_data("line 1\r\nline 2\nline 3\r\n");
    // Named vectors: g++ 12 cannot compile a braced list of strings inside a
    // co_await ("array used as initializer"; docs/design.md, "Compilers").
    const std::vector<std::string> lf_crlf = {"\n", "\r\n"};
    const std::vector<std::string> crlf_lf = {"\r\n", "\n"};
    const std::vector<std::string> crlf_3 = {"\r\n", "3"};
    const std::vector<std::string> cdef_f = {"cdef", "f"};
    EXPECT_EQ(co_await r.readuntil(lf_crlf), "line 1\r\n");
    EXPECT_EQ(co_await r.readuntil(crlf_lf), "line 2\n");
    EXPECT_EQ(co_await r.readuntil(crlf_3), "line 3");
    // Two separators ending at the same byte: the same chunk either way.
    r.feed_data("abcdef");
    EXPECT_EQ(co_await r.readuntil(cdef_f), "\r\nabcdef");
  }());
}

// Empty separators are ValueErrors (std::invalid_argument).
TEST_P(StreamReaderConformance, ReaduntilRejectsEmptySeparators) {
  run([]() -> Coro<void> {
    StreamReader r;
    r.feed_data("data");
    int errors = 0;
    try {
      co_await r.readuntil(std::string());
    } catch (const std::invalid_argument&) {
      ++errors;
    }
    try {
      co_await r.readuntil(std::vector<std::string>{});
    } catch (const std::invalid_argument&) {
      ++errors;
    }
    const std::vector<std::string> with_empty = {"a", ""};
    try {
      co_await r.readuntil(with_empty);
    } catch (const std::invalid_argument&) {
      ++errors;
    }
    EXPECT_EQ(errors, 3);
    EXPECT_EQ(r.buffered(), 4u);
  }());
}

// test_readexactly_zero_or_less.
TEST_P(StreamReaderConformance, ReadexactlyZeroOrLess) {
  run([]() -> Coro<void> {
    StreamReader r;
    r.feed_data(kData);
    EXPECT_EQ(co_await r.readexactly(0), "");
    bool raised = false;
    try {
      co_await r.readexactly(-1);
    } catch (const std::invalid_argument&) {
      raised = true;
    }
    EXPECT_TRUE(raised);
    EXPECT_EQ(r.buffered(), sizeof(kData) - 1);
  }());
}

// test_readexactly: waits until n bytes are there.
TEST_P(StreamReaderConformance, ReadexactlyWaitsForAllTheBytes) {
  run([]() -> Coro<void> {
    StreamReader r;
    get_running_loop().call_soon([r]() mutable {
      r.feed_data(kData);
      r.feed_data(kData);
      r.feed_data(kData);
    });
    const std::string three = std::string(kData) + kData + kData;
    EXPECT_EQ(co_await r.readexactly(2 * (sizeof(kData) - 1)), three.substr(0, 2 * (sizeof(kData) - 1)));
    EXPECT_EQ(r.buffered(), sizeof(kData) - 1);
  }());
}

// test_readexactly_eof: IncompleteReadError(partial, n), buffer cleared.
TEST_P(StreamReaderConformance, ReadexactlyAtEofRaisesIncompleteRead) {
  run([]() -> Coro<void> {
    StreamReader r;
    get_running_loop().call_soon([r]() mutable {
      r.feed_data(kData);
      r.feed_eof();
    });
    bool raised = false;
    try {
      co_await r.readexactly(2 * (sizeof(kData) - 1));
    } catch (const IncompleteReadError& e) {
      raised = true;
      EXPECT_EQ(e.partial(), kData);
      EXPECT_EQ(e.expected(), 2 * (sizeof(kData) - 1));
      EXPECT_STREQ(e.what(), "18 bytes read on a total of 36 expected bytes");
    }
    EXPECT_TRUE(raised);
    EXPECT_EQ(r.buffered(), 0u);
  }());
}

// test_exception_waiter: set_exception wakes a waiting reader with it.
TEST_P(StreamReaderConformance, SetExceptionWakesAWaitingReader) {
  run([]() -> Coro<void> {
    StreamReader r;
    get_running_loop().call_soon(
        [r]() mutable { r.set_exception(std::make_exception_ptr(std::invalid_argument("bad"))); });
    bool raised = false;
    try {
      co_await r.readline();
    } catch (const std::invalid_argument& e) {
      raised = std::string(e.what()) == "bad";
    }
    EXPECT_TRUE(raised);
  }());
}

// test_exception_cancel: a cancelled waiter is skipped by set_exception, and
// the next read raises the exception.
TEST_P(StreamReaderConformance, SetExceptionSkipsACancelledWaiter) {
  run([]() -> Coro<void> {
    StreamReader r;
    Task<std::string> t = create_task(r.readline());
    co_await sleep(absl::ZeroDuration());
    t.cancel();
    co_await sleep(absl::ZeroDuration());
    r.set_exception(std::make_exception_ptr(std::runtime_error("after cancel")));
    bool cancelled = false;
    try {
      co_await t;
    } catch (const CancelledError&) {
      cancelled = true;
    }
    EXPECT_TRUE(cancelled);
    bool raised = false;
    try {
      co_await r.read(1);
    } catch (const std::runtime_error& e) {
      raised = std::string(e.what()) == "after cancel";
    }
    EXPECT_TRUE(raised);
  }());
}

// _wait_for_data: two coroutines waiting on one reader is an error.
TEST_P(StreamReaderConformance, TwoWaitingReadersAreAnError) {
  run([]() -> Coro<void> {
    StreamReader r;
    Task<std::string> first = create_task(r.read(10));
    co_await sleep(absl::ZeroDuration());
    bool raised = false;
    try {
      co_await r.read(10);
    } catch (const std::runtime_error& e) {
      raised = std::string(e.what()).find("already waiting for incoming data") != std::string::npos;
    }
    EXPECT_TRUE(raised);
    r.feed_data("x");
    EXPECT_EQ(co_await first, "x");
  }());
}

// test_at_eof: EOF fed and the buffer empty.
TEST_P(StreamReaderConformance, AtEofNeedsEofAndAnEmptyBuffer) {
  run([]() -> Coro<void> {
    StreamReader r;
    EXPECT_FALSE(r.at_eof());
    r.feed_data("some data\n");
    EXPECT_FALSE(r.at_eof());
    co_await r.readline();
    EXPECT_FALSE(r.at_eof());
    r.feed_data("some data\n");
    r.feed_eof();
    co_await r.readline();
    EXPECT_TRUE(r.at_eof());
  }());
}

// test_feed_empty_data / feeding after EOF.
TEST_P(StreamReaderConformance, FeedingNothingChangesNothingAndFeedingAfterEofIsAnError) {
  run([]() -> Coro<void> {
    StreamReader r;
    r.feed_data("");
    EXPECT_EQ(r.buffered(), 0u);
    r.feed_eof();
    EXPECT_THROW(r.feed_data("late"), std::logic_error);
    co_return;
  }());
}

// Limits must be positive (asyncio: "Limit cannot be <= 0").
TEST_P(StreamReaderConformance, ZeroLimitIsRejected) {
  EXPECT_THROW(StreamReader(0), std::invalid_argument);
}

// read_into (twinloop's extension) behaves as read(n) without allocating.
TEST_P(StreamReaderConformance, ReadIntoFillsTheCallersBuffer) {
  run([]() -> Coro<void> {
    StreamReader r;
    feed_soon(r, "abcdef");
    char buf[4];
    EXPECT_EQ(co_await r.read_into(std::span<char>(buf, 4)), 4u);
    EXPECT_EQ(std::string(buf, 4), "abcd");
    EXPECT_EQ(co_await r.read_into(std::span<char>(buf, 4)), 2u);
    r.feed_eof();
    EXPECT_EQ(co_await r.read_into(std::span<char>(buf, 4)), 0u);
  }());
}

TWINLOOP_INSTANTIATE_ON_BOTH_LOOPS(StreamReaderConformance);

}  // namespace
}  // namespace twinloop::conformance
