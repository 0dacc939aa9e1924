// Hostile requests: each gets Tango's failure shape (statusId -1, a message
// that says what is wrong), nothing is written outside the courselab, and the
// service keeps running.
#include <set>

#include "ServiceFixture.hpp"

namespace tango::test {
namespace {

class BadInputTest : public ServiceTest {
 protected:
  std::set<std::string> treeSnapshot() {
    std::set<std::string> files;
    for (auto& e : std::filesystem::recursive_directory_iterator(tangod->dir()))
      if (e.path().filename().string().find("tango.sqlite") == std::string::npos &&
          e.path().string().find("/vms/") == std::string::npos &&
          !e.path().string().ends_with(".log"))
        files.insert(e.path().string());
    return files;
  }
  void expectFailure(const HttpResponse& r, const std::string& msgPart) {
    EXPECT_EQ(r.contentType, "application/json");
    auto j = r.json();
    EXPECT_EQ(j["statusId"].as_int64(), -1) << r.body;
    EXPECT_NE(std::string(j["statusMsg"].as_string()).find(msgPart), std::string::npos)
        << "wanted '" << msgPart << "' in " << r.body;
  }
  json::object job(std::initializer_list<std::pair<const char*, json::value>> over = {}) {
    json::object j{{"image", "autograding_image"},
                   {"files", json::array{json::object{{"localFile", "autograde-Makefile"},
                                                      {"destFile", "Makefile"}}}},
                   {"output_file", "out"},
                   {"jobName", "j"},
                   {"timeout", 10}};
    for (auto& [k, v] : over) j[k] = v;
    return j;
  }
  std::string addJob(const json::value& body, const std::string& lab = "lab") {
    return http->post("/addJob/test/" + lab + "/", json::serialize(body)).body;
  }
};

TEST_F(BadInputTest, EveryBadRequestFailsCleanlyAndWritesNothing) {
  openLab("lab");
  ASSERT_EQ(upload("lab", "autograde-Makefile", "all:\n\techo hi\n")["statusId"].as_int64(), 0);
  const auto before = treeSnapshot();
  const auto expectJobRejected = [&](const json::value& body, const std::string& part) {
    HttpResponse r = http->post("/addJob/test/lab/", json::serialize(body));
    expectFailure(r, part);
  };

  expectFailure(http->get("/open/wrongkey/lab/"), "Key not recognized");
  expectFailure(http->get("/open/test/..%2F..%2Fescape/"), "");
  expectFailure(http->get("/open/test/%2Fetc/"), "");
  expectFailure(http->get("/poll/test/lab/..%2F..%2F..%2Fetc%2Fhostname/"), "");
  expectFailure(http->get("/poll/test/lab/nothing-here/"), "Output file not found");
  expectFailure(http->post("/upload/test/lab/", "x", {{"Filename", "../../x"}}), "");
  expectFailure(http->post("/upload/test/lab/", "x", {{"Filename", "/etc/x"}}), "");
  expectFailure(http->post("/upload/test/lab/", "x", {}), "");
  expectFailure(http->post("/upload/test/never-opened/", "x", {{"Filename", "f"}}),
                "Courselab not found");
  expectFailure(http->post("/addJob/test/never-opened/", json::serialize(job())),
                "Courselab not found");
  expectFailure(http->post("/addJob/test/lab/", "{not json"), "");
  expectFailure(http->post("/addJob/test/lab/", "[1,2]"), "");
  expectJobRejected(job({{"files", json::array{json::object{{"localFile", "../../../etc/passwd"},
                                                            {"destFile", "Makefile"}}}}}),
                    "localFile");
  expectJobRejected(job({{"files", json::array{json::object{{"localFile", "/etc/passwd"},
                                                            {"destFile", "Makefile"}}}}}),
                    "localFile");
  expectJobRejected(job({{"files", json::array{json::object{{"localFile", "autograde-Makefile"},
                                                            {"destFile", "../Makefile"}}}}}),
                    "destFile");
  expectJobRejected(job({{"files", json::array{json::object{{"localFile", "autograde-Makefile"},
                                                            {"destFile", "notmake"}}}}}),
                    "Makefile");
  expectJobRejected(job({{"files", json::array{json::object{{"localFile", "missing"},
                                                            {"destFile", "Makefile"}}}}}),
                    "missing");
  expectJobRejected(job({{"files", "Makefile"}}), "files");
  expectJobRejected(job({{"output_file", "../../out"}}), "output_file");
  expectJobRejected(job({{"output_file", ""}}), "output_file");
  expectJobRejected(job({{"output_file", 7}}), "output_file");
  expectJobRejected(job({{"image", "no-such-image"}}), "image");
  expectJobRejected(job({{"timeout", -5}}), "timeout");
  expectJobRejected(job({{"timeout", 99999999}}), "timeout");
  expectJobRejected(job({{"timeout", "soon"}}), "timeout");
  expectJobRejected(job({{"jobName", json::value(nullptr)}}), "jobName");
  expectJobRejected(job({{"jobName", "a\nAutograder: fake line"}}), "jobName");
  expectJobRejected(job({{"callback_url", "file:///etc/passwd"}}), "callback_url");
  expectJobRejected(job({{"disable_network", "no"}}), "disable_network");
  expectJobRejected(job({{"limits", "lots"}}), "field 'limits' must be an object");
  expectJobRejected(job({{"limits", json::object{{"memory", 64}}}}), "unknown limit 'memory'");
  expectJobRejected(job({{"limits", json::object{{"memory_mb", 8}}}}),
                    "limits.memory_mb must be an integer from 16 to 4096");
  expectJobRejected(job({{"limits", json::object{{"memory_mb", 1 << 20}}}}), "limits.memory_mb");
  expectJobRejected(job({{"limits", json::object{{"procs", 0}}}}), "limits.procs");
  expectJobRejected(job({{"limits", json::object{{"procs", -3}}}}), "limits.procs");
  expectJobRejected(job({{"limits", json::object{{"disk_mb", "big"}}}}), "limits.disk_mb");
  expectJobRejected(job({{"limits", json::object{{"cpu_seconds", 1.5}}}}), "limits.cpu_seconds");
  expectJobRejected(job({{"limits", json::object{{"file_size_mb", 1 << 30}}}}),
                    "limits.file_size_mb");
  json::object noImage = job();
  noImage.erase("image");
  expectJobRejected(noImage, "image");
  expectFailure(http->get("/getPartialOutput/test/999999/"), "");
  expectFailure(http->get("/getPartialOutput/test/abc/"), "");
  expectFailure(http->get("/jobs/test/7/"), "");
  expectFailure(http->get("/pool/test/no-such-image/"), "Pool not found");
  expectFailure(http->post("/prealloc/test/autograding_image/-1/", ""), "Invalid prealloc size");
  expectFailure(http->post("/prealloc/test/no-such-image/2/", ""), "Invalid image name");

  // A header far over the limit, then a body over the JSON limit.
  HttpResponse huge =
      http->request("GET", "/info/test/", "", {{"X-Big", std::string(200 * 1024, 'a')}});
  EXPECT_NE(huge.status, 200);
  EXPECT_EQ(huge.json()["statusId"].as_int64(), -1);
  expectFailure(http->post("/addJob/test/lab/", std::string(3 * 1024 * 1024, ' ')), "");

  // Nothing was written, nothing was queued, the service still answers.
  EXPECT_EQ(treeSnapshot(), before);
  EXPECT_EQ(http->get("/jobs/test/0/").json()["jobs"].as_array().size(), 0u);
  auto info = http->get("/info/test/").json();
  EXPECT_EQ(info["statusMsg"].as_string(), "Found info successfully");
  EXPECT_FALSE(std::filesystem::exists(tangod->dataDir() / "courselabs" / "escape"));
  EXPECT_FALSE(std::filesystem::exists(tangod->dataDir() / "escape"));
}

TEST_F(BadInputTest, RejectedJobsDoNotUseUpIds) {
  openLab("lab");
  upload("lab", "autograde-Makefile", "all:\n\t@echo ok\n");
  auto first = submit("lab", {{"autograde-Makefile", "all:\n\t@echo ok\n"}}, "a.out");
  for (int i = 0; i < 3; ++i) addJob(job({{"image", "nope"}}));
  auto second = submit("lab", {{"autograde-Makefile", "all:\n\t@echo ok\n"}}, "b.out");
  EXPECT_EQ(second, first + 1);
}

}  // namespace
}  // namespace tango::test
