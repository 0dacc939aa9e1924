#include "tango/rest/Exchanges.hpp"

#include "tango/rest/TangoJson.hpp"

namespace tango::rest {

HttpResponse tooLargeAnswer(std::string_view what, std::uint64_t limit) {
  return jsonFailure(std::string(what) + " too large: the limit is " + std::to_string(limit) +
                     " bytes");
}

namespace {

class LaterExchange : public HttpExchange {
 public:
  LaterExchange(std::function<HttpResponse()> answer, bool blocking,
                std::uint64_t discard = kDiscardLimit)
      : answer_(std::move(answer)), blocking_(blocking), discard_(discard) {}
  BodyPolicy bodyPolicy() const override { return {false, discard_}; }
  bool blocking() const override { return blocking_; }
  bool onBody(std::string_view) override { return true; }
  HttpResponse finish() override { return answer_(); }
  HttpResponse tooLarge() override { return answer_(); }

 private:
  std::function<HttpResponse()> answer_;
  bool blocking_;
  std::uint64_t discard_;
};

class WhenDoneExchange : public HttpExchange {
 public:
  using Start = std::function<void(std::function<void(HttpResponse)>)>;
  explicit WhenDoneExchange(Start start) : start_(std::move(start)) {}
  BodyPolicy bodyPolicy() const override { return {false, kDiscardLimit}; }
  bool answersLater() const override { return true; }
  void finishLater(std::function<void(HttpResponse)> done) override { start_(std::move(done)); }
  bool onBody(std::string_view) override { return true; }
  HttpResponse finish() override { return jsonFailure("Internal server error", 500); }
  HttpResponse tooLarge() override { return tooLargeAnswer("Request body", kDiscardLimit); }

 private:
  Start start_;
};

class BufferExchange : public HttpExchange {
 public:
  BufferExchange(std::uint64_t limit, std::function<HttpResponse(const std::string&)> answer)
      : limit_(limit), answer_(std::move(answer)) {}
  BodyPolicy bodyPolicy() const override { return {true, limit_}; }
  bool blocking() const override { return true; }
  bool onBody(std::string_view chunk) override {
    body_.append(chunk);
    return true;
  }
  HttpResponse finish() override { return answer_(body_); }
  HttpResponse tooLarge() override { return tooLargeAnswer("Request body", limit_); }

 private:
  std::uint64_t limit_;
  std::function<HttpResponse(const std::string&)> answer_;
  std::string body_;
};

class UploadExchange : public HttpExchange {
 public:
  UploadExchange(Courselabs& labs, Courselabs::Upload upload, std::uint64_t limit)
      : labs_(labs), upload_(std::move(upload)), limit_(limit) {}
  BodyPolicy bodyPolicy() const override { return {true, limit_}; }
  // Committing may hash the existing file to compare it.
  bool blocking() const override { return true; }
  bool onBody(std::string_view chunk) override {
    writeFailed_ = !upload_->write(chunk);
    return !writeFailed_;
  }
  HttpResponse finish() override {
    if (writeFailed_) return jsonFailure("Cannot store file: write failed (disk full?)");
    std::string error;
    switch (labs_.commit(std::move(*upload_), error)) {
      case Courselabs::CommitResult::Uploaded:
        return tangoOk("Uploaded file");
      case Courselabs::CommitResult::Exists:
        return tangoOk("File exists");
      case Courselabs::CommitResult::Failed:
        break;
    }
    return jsonFailure(error);
  }
  HttpResponse tooLarge() override {
    upload_.reset();  // the partial file goes now
    return tooLargeAnswer("File", limit_);
  }

 private:
  Courselabs& labs_;
  std::optional<Courselabs::Upload> upload_;
  std::uint64_t limit_;
  bool writeFailed_ = false;
};

class FileExchange : public HttpExchange {
 public:
  FileExchange(courselab::TempFile temp, std::uint64_t limit,
               std::function<HttpResponse(const std::filesystem::path&)> answer, bool longRunning)
      : temp_(std::move(temp)), limit_(limit), answer_(std::move(answer)), long_(longRunning) {}
  BodyPolicy bodyPolicy() const override { return {true, limit_}; }
  bool blocking() const override { return true; }
  bool longRunning() const override { return long_; }
  bool onBody(std::string_view chunk) override {
    writeFailed_ = !temp_->write(chunk);
    return !writeFailed_;
  }
  HttpResponse finish() override {
    if (writeFailed_) return jsonFailure("Cannot store request body: write failed (disk full?)");
    HttpResponse r = answer_(temp_->path());
    temp_.reset();
    return r;
  }
  HttpResponse tooLarge() override {
    temp_.reset();
    return tooLargeAnswer("Request body", limit_);
  }

 private:
  std::optional<courselab::TempFile> temp_;
  std::uint64_t limit_;
  std::function<HttpResponse(const std::filesystem::path&)> answer_;
  bool long_;
  bool writeFailed_ = false;
};

}  // namespace

std::unique_ptr<HttpExchange> answerLater(std::function<HttpResponse()> answer, bool blocking) {
  return std::make_unique<LaterExchange>(std::move(answer), blocking);
}

std::unique_ptr<HttpExchange> answerNow(HttpResponse answer, std::uint64_t discard) {
  return std::make_unique<LaterExchange>([a = std::move(answer)] { return a; }, false, discard);
}

std::unique_ptr<HttpExchange> answerWhenDone(
    std::function<void(std::function<void(HttpResponse)>)> start) {
  return std::make_unique<WhenDoneExchange>(std::move(start));
}

std::unique_ptr<HttpExchange> bufferBody(std::uint64_t limit,
                                         std::function<HttpResponse(const std::string&)> answer) {
  return std::make_unique<BufferExchange>(limit, std::move(answer));
}

std::unique_ptr<HttpExchange> uploadBody(Courselabs& labs, Courselabs::Upload upload,
                                         std::uint64_t limit) {
  return std::make_unique<UploadExchange>(labs, std::move(upload), limit);
}

std::unique_ptr<HttpExchange> fileBody(
    courselab::TempFile temp, std::uint64_t limit,
    std::function<HttpResponse(const std::filesystem::path&)> answer, bool longRunning) {
  return std::make_unique<FileExchange>(std::move(temp), limit, std::move(answer), longRunning);
}

}  // namespace tango::rest
