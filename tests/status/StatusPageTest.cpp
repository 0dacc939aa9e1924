// The live status page in a real headless Chromium against a real tangod:
// a job is seen queued, then running, then finished, by the page's own
// polling; a screenshot is kept under <build>/test-artifacts/.
#include <regex>

#include "../service/ServiceFixture.hpp"

namespace tango::test {
namespace {

const char* kChromium = "/usr/bin/chromium";

class StatusPage : public ServiceTest {
 protected:
  // One job at a time, so a second job waits in the queue while the first runs.
  std::string extraConfig() override { return "POOL_SIZE = 1\n"; }

  // Runs headless Chromium on the page and returns what it printed (the DOM with --dump-dom).
  std::string chromium(const std::vector<std::string>& extra, const std::string& url) {
    auto profile = tangod->dir() / ("chromium-" + std::to_string(runs_++));
    std::filesystem::create_directories(profile);
    auto out = tangod->dir() / "chromium.out";
    std::string cmd = std::string(kChromium) +
                      " --headless --no-sandbox --disable-gpu --disable-quic --no-first-run"
                      " --disable-background-networking --disable-component-update --disable-sync"
                      " --disable-dev-shm-usage --user-data-dir='" +
                      profile.string() + "'";
    for (const auto& e : extra) cmd += " " + e;
    cmd += " '" + url + "' > '" + out.string() + "' 2>/dev/null";
    int rc = std::system(cmd.c_str());
    EXPECT_EQ(rc, 0) << cmd;
    std::error_code ec;
    std::filesystem::remove_all(profile, ec);
    return readFile(out);
  }
  std::string page() {
    return "http://127.0.0.1:" + std::to_string(tangod->port()) + "/status/?key=test";
  }
  std::string dom() { return chromium({"--virtual-time-budget=3000", "--dump-dom"}, page()); }

  // The live job `id`, once `pred` holds for it.
  bool waitLive(std::int64_t id, const std::function<bool(const json::object&)>& pred) {
    // Generous: the first job sleeps 30 s and Chromium is slow on a loaded machine.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      auto live = http->get("/jobs/test/0/").json();  // keep it alive while iterating
      for (auto& j : live["jobs"].as_array())
        if (j.as_object().at("id").as_int64() == id && pred(j.as_object())) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    return false;
  }

  // Saves the page as <build>/test-artifacts/<name>.
  void screenshot(const std::string& name) {
    auto artifacts = std::filesystem::path(TEST_TMP_DIR).parent_path() / "test-artifacts";
    std::filesystem::create_directories(artifacts);
    auto shot = artifacts / name;
    std::filesystem::remove(shot);
    chromium({"--virtual-time-budget=3000", "--window-size=1280,900",
              "--screenshot='" + shot.string() + "'"},
             page());
    ASSERT_TRUE(std::filesystem::exists(shot));
    EXPECT_GT(std::filesystem::file_size(shot), 10000u);
  }

  int runs_ = 0;
};

TEST_F(StatusPage, DataAndPageNeedTheKey) {
  EXPECT_EQ(http->get("/status/").status, 403);
  EXPECT_EQ(http->get("/status/data?key=nope").status, 403);
  auto pageAnswer = http->get("/status/?key=test");
  EXPECT_EQ(pageAnswer.status, 200);
  EXPECT_EQ(pageAnswer.contentType, "text/html; charset=utf-8");
  EXPECT_EQ(pageAnswer.body.find("http://"), std::string::npos);  // nothing loaded from elsewhere
  EXPECT_EQ(pageAnswer.body.find("https://"), std::string::npos);
  auto data = http->request("GET", "/status/data", "", {{"X-Tango-Key", "test"}});
  ASSERT_EQ(data.status, 200);
  auto d = data.json();
  for (const char* k : {"queue", "queueTotal", "running", "pools", "finished", "info"})
    EXPECT_TRUE(d.contains(k)) << k;
}

TEST_F(StatusPage, ShowsAJobQueuedThenRunningThenFinished) {
  ASSERT_TRUE(std::filesystem::exists(kChromium))
      << "install Debian's chromium (scripts/install-deps.sh)";
  // The first job holds the only VM long enough for Chromium (slow to start on a
  // loaded machine) to see it running; the second waits behind it.
  auto slow =
      submit("lab", {{"autograde-Makefile", "autograde:\n\t@sleep 30\n\t@echo slow done\n"}},
             "slow.out", {{"timeout", 60}});
  ASSERT_TRUE(waitLive(slow, [](const json::object& j) { return j.at("assigned").as_bool(); }));
  // The second job also takes a while, so the page can catch it running.
  auto quick =
      submit("lab2", {{"autograde-Makefile", "autograde:\n\t@sleep 20\n\t@echo second done\n"}},
             "quick.out", {{"timeout", 60}});
  ASSERT_TRUE(waitLive(quick, [](const json::object& j) { return !j.at("assigned").as_bool(); }));

  std::string d1 = dom();
  screenshot("status-page-busy.png");
  EXPECT_NE(d1.find("<tr class=\"queued\" data-id=\"" + std::to_string(quick) + "\">"),
            std::string::npos)
      << d1;
  EXPECT_NE(d1.find("<tr class=\"running\" data-id=\"" + std::to_string(slow) + "\">"),
            std::string::npos)
      << d1;
  EXPECT_NE(d1.find("job-quick.out"), std::string::npos);

  ASSERT_TRUE(waitLive(quick, [](const json::object& j) { return j.at("assigned").as_bool(); }));
  std::string d2 = dom();
  EXPECT_NE(d2.find("<tr class=\"running\" data-id=\"" + std::to_string(quick) + "\">"),
            std::string::npos)
      << d2;

  ASSERT_TRUE(waitDead(quick));
  std::string d3 = dom();
  EXPECT_NE(d3.find("<tr class=\"finished\" data-id=\"" + std::to_string(quick) +
                    "\" data-outcome=\"success\">"),
            std::string::npos)
      << d3;
  EXPECT_NE(d3.find("id=\"conn\" class=\"\">updated "), std::string::npos) << d3;  // no failed poll

  EXPECT_NE(d3.find(" MB</td>"), std::string::npos) << d3;  // resource usage shown
  EXPECT_NE(d3.find("<td>lab2</td><td class=\"success\">"), std::string::npos)
      << d3;  // the finished list names the courselab
  // The last hour's charts, drawn from the service's own samples (one every
  // 10 s; the jobs above took longer than that): a line for the queue, and
  // the courselab that waited in the wait chart's legend.
  const auto chartAt = d3.find("id=\"chartQueue\"");
  ASSERT_NE(chartAt, std::string::npos) << d3;
  EXPECT_NE(d3.find("<polyline", chartAt), std::string::npos) << d3;
  EXPECT_NE(d3.find("lab2 (s)"), std::string::npos) << d3;
  screenshot("status-page.png");
}

}  // namespace
}  // namespace tango::test
