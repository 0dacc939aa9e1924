#pragma once
// The kinds of request TangoREST handles, by what they do with the body:
// ignore it, buffer it (small JSON), or stream it to a file (uploads, image
// tarballs) so a big body never sits in memory.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "tango/core/JobService.hpp"
#include "tango/courselab/Courselabs.hpp"
#include "tango/courselab/TempFile.hpp"
#include "tango/rest/Http.hpp"

namespace tango::rest {

// A body on a route that takes none is read and dropped up to this size;
// beyond it the connection is closed after the answer.
constexpr std::uint64_t kDiscardLimit = 64 * 1024;

// The answer does not depend on the body; computed once the body is gone.
std::unique_ptr<HttpExchange> answerLater(std::function<HttpResponse()> answer, bool blocking);
// `discard`: how much of a body to read and drop before answering (0: none,
// the answer goes at once and the connection closes if a body was coming).
std::unique_ptr<HttpExchange> answerNow(HttpResponse answer, std::uint64_t discard = kDiscardLimit);

// The answer comes later from elsewhere (HttpExchange::answersLater): once
// the body is gone, `start(done)` is called, and `done` later with it.
std::unique_ptr<HttpExchange> answerWhenDone(
    std::function<void(std::function<void(HttpResponse)>)> start);

// Buffers a body of at most `limit` bytes, then answers with `answer(body)`.
std::unique_ptr<HttpExchange> bufferBody(std::uint64_t limit,
                                         std::function<HttpResponse(const std::string&)> answer);

// Streams the body into the courselab through `upload`, then commits it.
std::unique_ptr<HttpExchange> uploadBody(Courselabs& labs, Courselabs::Upload upload,
                                         std::uint64_t limit);

// Streams the body into `temp`, then answers with `answer(temp path)`; the
// temp file is removed afterwards (or when the client goes away first).
// `longRunning`: answer() may take minutes (HttpExchange::longRunning).
std::unique_ptr<HttpExchange> fileBody(
    courselab::TempFile temp, std::uint64_t limit,
    std::function<HttpResponse(const std::filesystem::path&)> answer, bool longRunning = false);

// "... too large: the limit is N bytes" as a Tango failure.
HttpResponse tooLargeAnswer(std::string_view what, std::uint64_t limit);

}  // namespace tango::rest
