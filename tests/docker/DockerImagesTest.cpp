// Images on localDocker: one without an `autograde` user still runs jobs
// (the VMMS adds the user), one whose grading home is outside /home/ is
// refused with a clear error, and the build route loads a `docker save`
// tarball and tags it as Tango does.
#include <functional>

#include "DockerFixture.hpp"
#include "tango/docker/Tar.hpp"

namespace tango::test {
namespace {

// Makes images derived from the test image by rewriting its /etc/passwd
// and /etc/group, and removes them (their containers first: an image still
// in use would only be untagged and stay behind, dangling).
class DockerImagesTest : public DockerTest {
 protected:
  using Rewrite = std::function<std::string(const std::string&)>;

  // The service stopped and the prefix's containers gone (DockerTest), the
  // images can go.
  void TearDown() override {
    DockerTest::TearDown();
    for (const auto& image : made_) {
      try {
        engine.removeImage(image);
      } catch (const std::exception& e) {
        ADD_FAILURE() << "cannot remove " << image << ": " << e.what();
      }
    }
  }

  // The test image with `rewrite` applied to its passwd and group files;
  // the service is restarted so it sees the new image.
  std::string derivedImage(const std::string& what, const Rewrite& rewrite) {
    const std::string image = "tango-test-" + what + "-" + prefix;
    const std::string maker = prefix + "-maker";
    docker::ContainerSpec spec;
    spec.name = maker;
    spec.image = testImage();
    spec.labels = {{"tango.prefix", prefix}};
    spec.entrypoint = {"sleep"};
    spec.cmd = {"infinity"};
    engine.createContainer(spec, std::chrono::seconds(60));
    for (const char* file : {"/etc/passwd", "/etc/group"}) {
      auto tar = engine.getArchive(maker, file, 1 << 20, std::chrono::seconds(30));
      EXPECT_TRUE(tar) << file;
      auto text = tar ? docker::firstFileOfTar(*tar, 1 << 20) : std::nullopt;
      EXPECT_TRUE(text) << file;
      engine.putArchive(maker, "/",
                        docker::makeTar({{std::string(file).substr(1), docker::TarEntry::Kind::File,
                                          rewrite(text.value_or("")), 0644}}),
                        std::chrono::seconds(30));
    }
    engine.commit(maker, image);
    made_.push_back(image);
    engine.removeContainer(maker);
    tangod->stop(SIGKILL);
    tangod->start();
    restartHttp();
    return image;
  }

 private:
  std::vector<std::string> made_;
};

// The lines of a passwd/group file, each rewritten by `f` (empty: dropped).
std::string eachLine(const std::string& text,
                     const std::function<std::string(const std::string&)>& f) {
  std::string out;
  std::stringstream ss(text);
  for (std::string line; std::getline(ss, line);)
    if (auto l = f(line); !l.empty()) out += l + "\n";
  return out;
}

TEST_F(DockerImagesTest, AnImageWithoutAutogradeUserRunsJobs) {
  const std::string image = derivedImage("nouser", [](const std::string& text) {
    return eachLine(
        text, [](const std::string& l) { return l.starts_with("autograde:") ? std::string() : l; });
  });
  submitTo("lab", {{"autograde-Makefile", "all:\n\t@id -un\n\t@pwd\n"}}, "nouser.out",
           {{"image", image}});
  auto out = waitOutput("lab", "nouser.out");
  ASSERT_TRUE(out) << tangod->log();
  EXPECT_NE(out->find("status 0\nautograde\n/home/autograde/"), std::string::npos) << *out;
}

TEST_F(DockerImagesTest, AnImageWhoseGradingHomeIsOutsideHomeIsRefusedClearly) {
  // The grading user's home becomes the job's tmpfs and is handed to that
  // user: a home like /var/lib/autograde (or /) must not be.
  const std::string image = derivedImage("varhome", [](const std::string& text) {
    return eachLine(text, [](const std::string& l) {
      if (!l.starts_with("autograde:")) return l;
      const auto home = l.find(":/home/autograde");
      return home == std::string::npos
                 ? l
                 : l.substr(0, home) + ":/var/lib/autograde" + l.substr(home + 16);
    });
  });
  auto id = submitTo("lab", {{"autograde-Makefile", "all:\n\t@echo ran\n"}}, "varhome.out",
                     {{"image", image}});
  ASSERT_GT(id, 0);
  auto job = waitDead(id);
  ASSERT_TRUE(job) << tangod->log();
  EXPECT_EQ(std::string((*job)["outcome"].as_string()), "internal_error") << json::serialize(*job);
  const std::string trace = json::serialize((*job)["trace"]);
  EXPECT_NE(trace.find("has its home at '/var/lib/autograde'; localDocker needs it under /home/"),
            std::string::npos)
      << trace;
  auto out = waitOutput("lab", "varhome.out");
  ASSERT_TRUE(out) << tangod->log();
  EXPECT_EQ(out->find("ran\n"), std::string::npos) << *out;
}

TEST_F(DockerImagesTest, BuildRouteLoadsADockerSaveTarball) {
  // A tiny image (one file) keeps the tarball small; the route does not care.
  const std::string tiny = "tango-test-tiny-" + prefix;
  const std::string built = "tango-test-built-" + prefix;
  const auto dir = tangod->dir();
  {
    std::ofstream(dir / "root.tar", std::ios::binary)
        << docker::makeTar({{"hello.txt", docker::TarEntry::Kind::File, "hi\n", 0644}});
  }
  engine.importImage(dir / "root.tar", tiny, "latest", {}, std::chrono::seconds(60));
  engine.saveImage(tiny + ":latest", dir / "saved.tar");
  engine.removeImage(tiny + ":latest");

  auto r = http->post("/build/test/", readFile(dir / "saved.tar"), {{"imageName", built}}).json();
  EXPECT_EQ(r["statusId"].as_int64(), 0) << json::serialize(r);
  EXPECT_EQ(r["statusMsg"].as_string(), "Docker image built");
  // Tango names images without ":latest"; prealloc accepts only known images.
  auto p = http->post("/prealloc/test/" + built + "/0/", "").json();
  EXPECT_EQ(p["statusId"].as_int64(), 0) << json::serialize(p);
  auto bad = http->post("/build/test/", "not a tarball", {{"imageName", built + "-bad"}}).json();
  EXPECT_EQ(bad["statusId"].as_int64(), -1);

  // An image this service built may be built again, after a restart too.
  tangod->stop(SIGKILL);
  tangod->start();
  restartHttp();
  auto again =
      http->post("/build/test/", readFile(dir / "saved.tar"), {{"imageName", built}}).json();
  EXPECT_EQ(again["statusId"].as_int64(), 0) << json::serialize(again);
  // One it did not build (the operator's) stays as it is.
  const std::string theirs = "tango-test-operators-" + prefix;
  engine.importImage(dir / "root.tar", theirs, "latest", {}, std::chrono::seconds(60));
  const auto idBefore = engine.inspectImage(theirs + ":latest");
  ASSERT_TRUE(idBefore);
  tangod->stop(SIGKILL);
  tangod->start();
  restartHttp();
  auto refused =
      http->post("/build/test/", readFile(dir / "saved.tar"), {{"imageName", theirs}}).json();
  EXPECT_EQ(refused["statusId"].as_int64(), -1);
  EXPECT_NE(std::string(refused["statusMsg"].as_string()).find("BUILD_IMAGES"), std::string::npos)
      << json::serialize(refused);
  const auto idAfter = engine.inspectImage(theirs + ":latest");
  ASSERT_TRUE(idAfter);
  EXPECT_EQ(idAfter->id, idBefore->id);
  engine.removeImage(theirs + ":latest");
  engine.removeImage(built + ":latest");
  // The tarball names the tiny image, so loading it tagged that name again.
  engine.removeImage(tiny + ":latest");
}

}  // namespace
}  // namespace tango::test
