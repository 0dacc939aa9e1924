// The SQLite store keeps no API key: a key id, and the job's paths relative
// to its courselab directory (whose name holds the key), made whole again
// when a job is loaded. A database of an older release, which held both, is
// rewritten when the store opens it.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "tango/store/SqliteJobStore.hpp"
#include "tango/util/KeyId.hpp"

namespace tango {
namespace {

namespace fs = std::filesystem;

const std::string kKey = "Old-Release-Key-0815";

class SqliteKeyFreeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(TEST_TMP_DIR) / ("store-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    lab_ = (dir_ / "courselabs" / (kKey + "-lab")).string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path db() const { return dir_ / "tango.sqlite"; }
  LabDirOf resolver() const {
    return [this](const std::string& id, const std::string& courselab) {
      return id == keyId(kKey) && courselab == "lab" ? lab_ : std::string();
    };
  }
  // Every byte of the database and its WAL files.
  std::string everything() const {
    std::string all;
    for (const char* suffix : {"", "-wal", "-shm"}) {
      std::ifstream in(db().string() + suffix, std::ios::binary);
      all.append(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    return all;
  }
  TangoJob job() const {
    TangoJob j;
    j.name = "hello";
    j.keyId = keyId(kKey);
    j.courselab = "lab";
    j.labDir = lab_;
    j.outputFile = lab_ + "/output/hello.out";
    j.input = {{lab_ + "/autograde-Makefile", "Makefile"}, {lab_ + "/hello.sh", "hello.sh"}};
    return j;
  }

  fs::path dir_;
  std::string lab_;
};

TEST_F(SqliteKeyFreeTest, ANewJobIsStoredWithoutTheKeyAndLoadsWithWholePaths) {
  std::int64_t id = 0;
  {
    SqliteJobStore store(db(), resolver());
    TangoJob j = job();
    id = store.insert(j, nullptr);
  }
  struct stat st {};
  ASSERT_EQ(::stat(db().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  const std::string bytes = everything();
  EXPECT_EQ(bytes.find(kKey), std::string::npos);
  EXPECT_NE(bytes.find("hello.sh"), std::string::npos) << "the job is in what was searched";

  SqliteJobStore store(db(), resolver());
  auto loaded = store.load(id);
  ASSERT_TRUE(loaded);
  EXPECT_EQ(loaded->keyId, keyId(kKey));
  EXPECT_EQ(loaded->outputFile, lab_ + "/output/hello.out");
  ASSERT_EQ(loaded->input.size(), 2u);
  EXPECT_EQ(loaded->input[1].localFile, lab_ + "/hello.sh");
}

TEST_F(SqliteKeyFreeTest, AnOlderReleasesDatabaseLosesItsKeysWhenOpened) {
  // The previous release's documents: the key itself, absolute paths, and a
  // trace line naming a path (its copy-in errors did). The second job's key
  // is no longer configured.
  const std::string goneKey = "Gone-Key-4242";
  const std::string goneLab = (dir_ / "courselabs" / (goneKey + "-lab")).string();
  {
    SqliteJobStore store(db(), resolver());
    for (int i = 0; i < 2; ++i) {
      TangoJob j = job();
      store.insert(j, nullptr);
    }
  }
  auto oldDoc = [](const std::string& key, const std::string& lab) {
    return R"({"name":"hello","key":")" + key + R"(","courselab":"lab","assigned":false,)" +
           R"("retries":0,"outputFile":")" + lab + R"(/output/hello.out","input":[{"localFile":")" +
           lab + R"(/hello.sh","destFile":"hello.sh"}],"state":"finished","trace":["x|open )" +
           lab + R"(/hello.sh: No such file"]})";
  };
  {
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open(db().c_str(), &raw), SQLITE_OK);
    const std::string sql = "UPDATE jobs SET state = 2, doc = '" + oldDoc(kKey, lab_) +
                            "' WHERE id = 1; UPDATE jobs SET state = 2, doc = '" +
                            oldDoc(goneKey, goneLab) + "' WHERE id = 2";
    ASSERT_EQ(sqlite3_exec(raw, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(raw);
  }
  ASSERT_NE(everything().find(kKey), std::string::npos) << "the old documents hold the keys";
  ASSERT_NE(everything().find(goneKey), std::string::npos);

  SqliteJobStore store(db(), resolver());
  const std::string bytes = everything();
  EXPECT_EQ(bytes.find(kKey), std::string::npos) << "rewritten, its old pages gone";
  EXPECT_EQ(bytes.find(goneKey), std::string::npos) << "a key no longer configured too";
  auto loaded = store.load(1);
  ASSERT_TRUE(loaded);
  EXPECT_EQ(loaded->keyId, keyId(kKey));
  EXPECT_EQ(loaded->outputFile, lab_ + "/output/hello.out");
  ASSERT_EQ(loaded->input.size(), 1u);
  EXPECT_EQ(loaded->input[0].localFile, lab_ + "/hello.sh");
  ASSERT_EQ(loaded->trace.size(), 1u);
  EXPECT_EQ(loaded->trace[0], "x|open " + (dir_ / "courselabs").string() + "/" + keyId(kKey) +
                                  "-lab/hello.sh: No such file");
  auto gone = store.load(2);
  ASSERT_TRUE(gone);
  EXPECT_EQ(gone->keyId, keyId(goneKey));
  EXPECT_TRUE(gone->labDir.empty()) << "its courselab cannot be found";
}

}  // namespace
}  // namespace tango
