#pragma once
// Reads the autodriver's framed stdout (-F; src/autodriver/Frames.hpp) as it
// arrives in chunks of any size: "P <n>\n" frames carry the output's head
// while the job runs (its partial output), one "O <n>\n" frame the result.
// The stream comes from inside a job's container, so it is checked as
// hostile: a bad header, a frame over its bound or bytes after the result
// end the reading with an error, and nothing kept grows past its cap.
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace tango {

class AutodriverFrames {
 public:
  using Sink = std::function<void(std::string_view)>;

  // `partial` receives the P bytes, which may be `partialCap` bytes in all;
  // the result may be `outputCap` bytes long at most.
  AutodriverFrames(std::size_t partialCap, std::size_t outputCap, Sink partial);

  void feed(std::string_view chunk);

  // Whether the O frame arrived whole.
  bool complete() const { return state_ == State::Done; }
  // Why the stream was refused, if it was.
  const std::optional<std::string>& error() const { return error_; }
  std::string takeOutput() { return std::move(output_); }

 private:
  enum class State { Header, Partial, Output, Done, Failed };
  void fail(std::string why);
  void startFrame();

  std::size_t partialCap_;
  std::size_t partialLeft_;
  std::size_t outputCap_;
  Sink partial_;
  State state_ = State::Header;
  std::string header_;
  std::size_t left_ = 0;  // bytes of the current frame still to come
  std::string output_;
  std::optional<std::string> error_;
};

}  // namespace tango
