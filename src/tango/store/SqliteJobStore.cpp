#include "tango/store/SqliteJobStore.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

#include "tango/model/JobJson.hpp"

namespace tango {

namespace {
[[noreturn]] void fail(sqlite3* db, const std::string& what) {
  const std::string detail = "sqlite: " + what + ": " + (db ? sqlite3_errmsg(db) : "no database");
  // A full disk is the operator's to fix, and the request may succeed
  // once there is space: answered as unavailable (503), with what to do.
  if (db && sqlite3_errcode(db) == SQLITE_FULL)
    throw StoreFull(
        "the grading service's disk is full: nothing was stored; free space on the "
        "disk of its DATA_DIR (" +
        detail + ")");
  throw std::runtime_error(detail);
}

// State is stored as an integer column beside the JSON document so the
// indexes can find live jobs and pending callbacks without parsing documents.
int stateCode(JobState s) { return static_cast<int>(s); }
}  // namespace

// RAII prepared statement.
class SqliteJobStore::Statement {
 public:
  Statement(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK) fail(db, sql);
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  void bind(int i, std::int64_t v) { check(sqlite3_bind_int64(stmt_, i, v)); }
  void bind(int i, const std::string& v) {
    check(sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
  }
  bool step() {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail(db_, "step");
  }
  std::int64_t int64(int col) { return sqlite3_column_int64(stmt_, col); }
  std::string text(int col) {
    auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
    return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col))) : "";
  }

 private:
  void check(int rc) {
    if (rc != SQLITE_OK) fail(db_, "bind");
  }
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

SqliteJobStore::SqliteJobStore(const std::filesystem::path& file, LabDirOf labDirOf)
    : labDirOf_(std::move(labDirOf)) {
  // Private before the first byte is written; SQLite gives its -wal and -shm
  // files the database's mode. An older release's 0644 file is tightened.
  {
    const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
      throw std::runtime_error("sqlite: cannot create " + file.string() + ": " +
                               std::strerror(errno));
    ::fchmod(fd, 0600);
    ::close(fd);
    for (const char* suffix : {"-wal", "-shm"}) ::chmod((file.string() + suffix).c_str(), 0600);
  }
  if (sqlite3_open_v2(file.c_str(), &db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    throw std::runtime_error("sqlite: cannot open " + file.string() + ": " + msg);
  }
  sqlite3_busy_timeout(db_, 5000);
  exec("PRAGMA journal_mode=WAL");
  // NORMAL: a commit survives a crash of the process; FULL (below, for the
  // commits that acknowledge something) also a power cut.
  exec("PRAGMA synchronous=NORMAL");
  // AUTOINCREMENT: ids are never reused, even after the newest job is deleted.
  exec(
      "CREATE TABLE IF NOT EXISTS jobs ("
      " id INTEGER PRIMARY KEY AUTOINCREMENT,"
      " state INTEGER NOT NULL,"
      " callback_pending INTEGER NOT NULL DEFAULT 0,"
      " doc TEXT NOT NULL)");
  exec("CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, id)");
  exec(
      "CREATE INDEX IF NOT EXISTS jobs_callback ON jobs(callback_pending) WHERE callback_pending = "
      "1");
  exec("CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)");
  exec("INSERT OR IGNORE INTO counters(name, value) VALUES ('vm_id', 1000)");
  dropStoredKeys();
}

void SqliteJobStore::dropStoredKeys() {
  // instr() finds the old field without parsing every document.
  std::vector<std::pair<std::int64_t, std::string>> rows;
  {
    std::lock_guard lock(mu_);
    Statement q(db_,
                "SELECT id, doc FROM jobs WHERE instr(doc, '\"key\":') > 0 AND "
                "instr(doc, '\"keyId\":') = 0");
    while (q.step()) rows.emplace_back(q.int64(0), q.text(1));
  }
  if (rows.empty()) return;
  std::lock_guard lock(mu_);
  exec("BEGIN IMMEDIATE");
  try {
    for (auto& [id, raw] : rows) {
      const boost::json::value doc = boost::json::parse(raw);
      std::string key;
      if (auto* k = doc.as_object().if_contains("key"); k && k->is_string())
        key = std::string(k->get_string());
      TangoJob job = fromStoreJson(doc);
      job.id = id;
      if (labDirOf_) rebaseJobPaths(job, labDirOf_(job.keyId, job.courselab));
      std::string text = boost::json::serialize(toStoreJson(job));
      // What still names the key (a path in an old trace, the paths of a
      // key no longer configured) names its id instead.
      if (!key.empty()) {
        const std::string from = "/" + key + "-", to = "/" + job.keyId + "-";
        for (auto at = text.find(from); at != std::string::npos;
             at = text.find(from, at + to.size()))
          text.replace(at, from.size(), to);
      }
      Statement upd(db_, "UPDATE jobs SET doc = ? WHERE id = ?");
      upd.bind(1, text);
      upd.bind(2, id);
      upd.step();
    }
    exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  // The old documents' pages must not linger in the file or its WAL.
  exec("VACUUM");
  exec("PRAGMA wal_checkpoint(TRUNCATE)");
}

SqliteJobStore::~SqliteJobStore() { sqlite3_close(db_); }

void SqliteJobStore::exec(const char* sql) {
  if (sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) != SQLITE_OK) fail(db_, sql);
}

// synchronous=FULL for one commit: the WAL is synced before it returns, and
// with it every earlier commit (the WAL is one sequence).
class SqliteJobStore::FullSync {
 public:
  explicit FullSync(SqliteJobStore& s) : s_(s) { s_.exec("PRAGMA synchronous=FULL"); }
  ~FullSync() { sqlite3_exec(s_.db_, "PRAGMA synchronous=NORMAL", nullptr, nullptr, nullptr); }
  FullSync(const FullSync&) = delete;
  FullSync& operator=(const FullSync&) = delete;

 private:
  SqliteJobStore& s_;
};

std::int64_t SqliteJobStore::insert(TangoJob& job, const std::function<void(TangoJob&)>& finalize) {
  std::lock_guard lock(mu_);
  // The addJob answer stands on this commit.
  FullSync full(*this);
  exec("BEGIN IMMEDIATE");
  try {
    {
      Statement ins(db_, "INSERT INTO jobs(state, callback_pending, doc) VALUES (?, 0, '{}')");
      ins.bind(1, stateCode(job.state));
      ins.step();
    }
    job.id = sqlite3_last_insert_rowid(db_);
    if (finalize) finalize(job);
    Statement upd(db_, "UPDATE jobs SET state = ?, callback_pending = ?, doc = ? WHERE id = ?");
    upd.bind(1, stateCode(job.state));
    upd.bind(2, job.callbackPending ? 1 : 0);
    upd.bind(3, boost::json::serialize(toStoreJson(job)));
    upd.bind(4, job.id);
    upd.step();
    exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  return job.id;
}

void SqliteJobStore::update(const TangoJob& job) {
  std::string doc = boost::json::serialize(toStoreJson(job));
  std::lock_guard lock(mu_);
  // A finished job's record (its output is published already) and the
  // callback state are what a restart must not undo; the steps between
  // may be: the job then runs again.
  std::optional<FullSync> full;
  if (job.state == JobState::Finished) full.emplace(*this);
  Statement upd(db_, "UPDATE jobs SET state = ?, callback_pending = ?, doc = ? WHERE id = ?");
  upd.bind(1, stateCode(job.state));
  upd.bind(2, job.callbackPending ? 1 : 0);
  upd.bind(3, doc);
  upd.bind(4, job.id);
  upd.step();
}

std::vector<TangoJob> SqliteJobStore::query(const char* sql, std::int64_t param) {
  std::vector<std::pair<std::int64_t, std::string>> rows;
  {
    std::lock_guard lock(mu_);
    Statement q(db_, sql);
    if (param >= 0) q.bind(1, param);
    while (q.step()) rows.emplace_back(q.int64(0), q.text(1));
  }
  // Parse outside the lock: large listings must not block job updates.
  std::vector<TangoJob> jobs;
  jobs.reserve(rows.size());
  for (auto& [id, doc] : rows) {
    TangoJob j = fromStoreJson(boost::json::parse(doc));
    j.id = id;
    if (labDirOf_) rebaseJobPaths(j, labDirOf_(j.keyId, j.courselab));
    jobs.push_back(std::move(j));
  }
  return jobs;
}

std::optional<TangoJob> SqliteJobStore::load(std::int64_t id) {
  auto jobs = query("SELECT id, doc FROM jobs WHERE id = ?", id);
  if (jobs.empty()) return std::nullopt;
  return std::move(jobs.front());
}

std::vector<TangoJob> SqliteJobStore::loadUnfinished() {
  return query("SELECT id, doc FROM jobs WHERE state < ? ORDER BY id",
               stateCode(JobState::Finished));
}

std::vector<TangoJob> SqliteJobStore::loadFinished(int limit) {
  auto jobs = query(
      "SELECT id, doc FROM (SELECT id, doc FROM jobs WHERE state = 2 ORDER BY id DESC LIMIT ?) "
      "ORDER BY id",
      limit);
  return jobs;
}

std::vector<TangoJob> SqliteJobStore::loadPendingCallbacks() {
  return query("SELECT id, doc FROM jobs WHERE callback_pending = 1 ORDER BY id", -1);
}

std::int64_t SqliteJobStore::countFinished() {
  std::lock_guard lock(mu_);
  Statement q(db_, "SELECT count(*) FROM jobs WHERE state = 2");
  q.step();
  return q.int64(0);
}

std::int64_t SqliteJobStore::nextVmId() {
  std::lock_guard lock(mu_);
  Statement q(db_, "UPDATE counters SET value = value + 1 WHERE name = 'vm_id' RETURNING value");
  if (!q.step()) fail(db_, "vm id counter missing");
  std::int64_t id = q.int64(0);
  while (q.step()) {
  }
  return id;
}

}  // namespace tango
