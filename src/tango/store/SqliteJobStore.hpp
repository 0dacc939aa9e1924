#pragma once
#include <filesystem>
#include <memory>
#include <mutex>

#include "tango/store/JobStore.hpp"

struct sqlite3;

namespace tango {

// SQLite in WAL mode. Every commit survives a crash of the process (kill -9);
// the commits that acknowledge something (a job accepted, a job finished)
// run with synchronous=FULL and survive a power cut too. The steps between
// (synchronous=NORMAL) may be lost to a power cut: the job then runs again.
// One connection behind a mutex: every statement is a few microseconds.
// The database file (and its -wal, -shm) is the service's alone (0600), and
// holds no API key (see toStoreJson).
class SqliteJobStore final : public JobStore {
 public:
  explicit SqliteJobStore(const std::filesystem::path& file, LabDirOf labDirOf = {});
  ~SqliteJobStore() override;

  std::int64_t insert(TangoJob& job, const std::function<void(TangoJob&)>& finalize) override;
  void update(const TangoJob& job) override;
  std::optional<TangoJob> load(std::int64_t id) override;
  std::vector<TangoJob> loadUnfinished() override;
  std::vector<TangoJob> loadFinished(int limit) override;
  std::vector<TangoJob> loadPendingCallbacks() override;
  std::int64_t countFinished() override;
  std::int64_t nextVmId() override;

 private:
  class Statement;
  class FullSync;
  void exec(const char* sql);
  std::vector<TangoJob> query(const char* sql, std::int64_t param);
  // Rewrites documents of an older release that held the API key.
  void dropStoredKeys();

  LabDirOf labDirOf_;
  std::mutex mu_;
  sqlite3* db_ = nullptr;  // owned; closed in the destructor
};

}  // namespace tango
