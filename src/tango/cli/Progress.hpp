#pragma once
// --runJob's progress: a bar redrawn in place on a terminal, one line per
// finished job otherwise (logs and pipes get no carriage returns).
#include <chrono>
#include <ostream>
#include <string>

namespace tango::cli {

class Progress {
 public:
  Progress(std::ostream& out, bool bar, int total);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void finished(const std::string& line);  // one job done; `line` describes it
  void tick();                             // redraw (elapsed time moves)

 private:
  void draw();
  std::ostream& out_;
  bool bar_;
  int total_;
  int done_ = 0;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

}  // namespace tango::cli
