// Images on localDocker: one without an `autograde` user still runs jobs
// (the VMMS adds the user), and the build route loads a `docker save`
// tarball and tags it as Tango does.
#include "DockerFixture.hpp"
#include "tango/docker/Tar.hpp"

namespace tango::test {
namespace {

using DockerImagesTest = DockerTest;

// Removes `line`s starting with "autograde:" from a passwd/group file.
std::string withoutAutograde(const std::string& text) {
  std::string out;
  std::stringstream ss(text);
  for (std::string line; std::getline(ss, line);)
    if (!line.starts_with("autograde:")) out += line + "\n";
  return out;
}

TEST_F(DockerImagesTest, AnImageWithoutAutogradeUserRunsJobs) {
  const std::string image = "tango-test-nouser-" + prefix;
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
    ASSERT_TRUE(tar);
    auto text = docker::firstFileOfTar(*tar, 1 << 20);
    ASSERT_TRUE(text);
    engine.putArchive(maker, "/",
                      docker::makeTar({{std::string(file).substr(1), docker::TarEntry::Kind::File,
                                        withoutAutograde(*text), 0644}}),
                      std::chrono::seconds(30));
  }
  engine.commit(maker, image);
  engine.removeContainer(maker);
  // Its containers go first: an image still in use would only be untagged
  // and stay behind, dangling.
  struct DropImage {
    docker::Engine& e;
    std::string name, prefix;
    ~DropImage() {
      try {
        for (const auto& c : e.listByLabel("tango.prefix", prefix)) e.removeContainer(c.name);
        e.removeImage(name);
      } catch (...) {
      }
    }
  } drop{engine, image, prefix};

  // Restart so the service sees the new image.
  tangod->stop(SIGKILL);
  tangod->start();
  restartHttp();
  submitTo("lab", {{"autograde-Makefile", "all:\n\t@id -un\n\t@pwd\n"}}, "nouser.out",
           {{"image", image}});
  auto out = waitOutput("lab", "nouser.out");
  ASSERT_TRUE(out) << tangod->log();
  EXPECT_NE(out->find("status 0\nautograde\n/home/autograde/"), std::string::npos) << *out;
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
  engine.removeImage(built + ":latest");
  // The tarball names the tiny image, so loading it tagged that name again.
  engine.removeImage(tiny + ":latest");
}

}  // namespace
}  // namespace tango::test
