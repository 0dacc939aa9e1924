#pragma once
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

namespace tango::test {

// A CA, a server certificate for IP 127.0.0.1, one signed by the same CA for
// another name, a client certificate, an unrelated CA and a client
// certificate it signed ("stranger"); made with the openssl CLI. Each NAME
// is NAME.crt and NAME.key in dir.
struct TestCerts {
  std::filesystem::path dir;
  TestCerts() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "tango-certs-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp");
    dir = tmpl;
    const std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    run("openssl req -x509 " + ec +
        " -keyout ca.key -out ca.crt -days 2 -subj '/CN=Tango Test CA'");
    run("openssl req -x509 " + ec +
        " -keyout other-ca.key -out other-ca.crt -days 2 -subj '/CN=Other CA'");
    issue("server", "/CN=127.0.0.1", "subjectAltName=IP:127.0.0.1");
    issue("wrongname", "/CN=redis.example", "subjectAltName=DNS:redis.example");
    issue("client", "/CN=tango", "extendedKeyUsage=clientAuth");
    issue("stranger", "/CN=tango", "extendedKeyUsage=clientAuth", "other-ca");
  }
  ~TestCerts() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  std::string path(const std::string& name) const { return (dir / name).string(); }

 private:
  void run(const std::string& cmd) const {
    const std::string line = "cd '" + dir.string() + "' && " + cmd + " >>openssl.log 2>&1";
    if (std::system(line.c_str()) != 0) throw std::runtime_error("failed: " + cmd);
  }
  void issue(const std::string& name, const std::string& subject, const std::string& extension,
             const std::string& ca = "ca") const {
    std::ofstream(dir / (name + ".ext")) << extension << "\n";
    run("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout " + name +
        ".key -out " + name + ".csr -subj '" + subject + "'");
    run("openssl x509 -req -in " + name + ".csr -CA " + ca + ".crt -CAkey " + ca +
        ".key -CAcreateserial -out " + name + ".crt -days 2 -extfile " + name + ".ext");
  }
};

}  // namespace tango::test
