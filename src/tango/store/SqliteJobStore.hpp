#pragma once
#include <filesystem>
#include <memory>
#include <mutex>

#include "tango/store/JobStore.hpp"

struct sqlite3;

namespace tango {

// SQLite in WAL mode with synchronous=NORMAL: a committed transaction survives
// a crash of the process (kill -9); only a power loss may lose the last ones.
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
  void exec(const char* sql);
  std::vector<TangoJob> query(const char* sql, std::int64_t param);
  // Rewrites documents of an older release that held the API key.
  void dropStoredKeys();

  LabDirOf labDirOf_;
  std::mutex mu_;
  sqlite3* db_ = nullptr;  // owned; closed in the destructor
};

}  // namespace tango
