#include "tango/docker/Engine.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <fstream>

#include "tango/util/Lines.hpp"

namespace tango::docker {

namespace json = boost::json;
using namespace std::chrono_literals;

namespace {

json::array strings(const std::vector<std::string>& v) {
  json::array a;
  for (const auto& s : v) a.emplace_back(s);
  return a;
}

// The engine's error message from a JSON body ({"message": ...}), else the body.
std::string engineMessage(const Response& r) {
  boost::system::error_code ec;
  json::value v = json::parse(r.body, ec);
  if (!ec && v.is_object())
    if (const auto* m = v.as_object().if_contains("message"); m && m->is_string())
      return std::string(m->get_string());
  return r.body.substr(0, 512);
}

json::value parseJson(const Response& r, const std::string& what) {
  boost::system::error_code ec;
  json::value v = json::parse(r.body, ec);
  if (ec) throw DockerError("unreadable answer to " + what);
  return v;
}

// Progress streams (load, import) are one JSON object per line; an "error"
// member in any of them means the operation failed even though HTTP said 200.
void forEachProgressLine(const std::string& body,
                         const std::function<void(const json::object&)>& fn) {
  forEachLine(body, [&](std::string_view line) {
    boost::system::error_code ec;
    json::value v = json::parse(line, ec);
    if (ec || !v.is_object()) return true;
    const auto& o = v.as_object();
    if (const auto* e = o.if_contains("error"); e && e->is_string())
      throw EngineError(200, std::string(e->get_string()));
    fn(o);
    return true;
  });
}

}  // namespace

std::string urlEncode(std::string_view s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

Engine::Engine(std::string socketPath) : client_(std::move(socketPath)) {}
Engine::Engine(Endpoint engine) : client_(std::move(engine)) {}

Response Engine::call(Request req, std::initializer_list<long> okStatus) {
  Response r = client_.send(req);
  for (long s : okStatus)
    if (r.status == s) return r;
  throw EngineError(r.status, req.method + " " + req.path + ": HTTP " + std::to_string(r.status) +
                                  ": " + engineMessage(r));
}

bool Engine::supportsPidsLimit() { return systemInfo(30s).pidsLimit; }

Engine::SystemInfo Engine::systemInfo(std::chrono::milliseconds timeout) {
  Request req;
  req.path = "/info";
  req.timeout = timeout;
  json::value v = parseJson(call(std::move(req), {200}), "engine info");
  SystemInfo info;
  if (!v.is_object()) return info;
  const auto& o = v.as_object();
  if (auto* x = o.if_contains("NCPU"); x && x->is_int64())
    info.cpus = static_cast<int>(x->get_int64());
  if (auto* x = o.if_contains("MemTotal"); x && x->is_int64()) info.memoryBytes = x->get_int64();
  if (auto* x = o.if_contains("PidsLimit"); x && x->is_bool()) info.pidsLimit = x->get_bool();
  return info;
}

void Engine::ping(std::chrono::milliseconds timeout) { client_.ping(timeout); }

void Engine::createContainer(const ContainerSpec& spec, std::chrono::milliseconds timeout) {
  json::object labels;
  for (const auto& [k, v] : spec.labels) labels[k] = v;
  json::object host{
      {"Privileged", false},
      {"CapDrop", json::array{"ALL"}},
      {"CapAdd", strings(spec.capAdd)},
      // Job processes can never gain privileges through setuid binaries.
      {"SecurityOpt", json::array{"no-new-privileges"}},
      {"Init", spec.init},
      {"NetworkMode", spec.networkNone ? "none" : "bridge"},
      // Output is read through attach, never from logs: no log file per
      // container on the engine's disk.
      {"LogConfig", json::object{{"Type", "none"}}},
  };
  if (spec.nanoCpus > 0) host["NanoCpus"] = spec.nanoCpus;
  if (spec.memoryBytes > 0) {
    host["Memory"] = spec.memoryBytes;
    host["MemorySwap"] = spec.memoryBytes;  // no swap beyond the limit
  }
  if (spec.pidsLimit > 0) host["PidsLimit"] = spec.pidsLimit;
  if (!spec.tmpfs.empty()) {
    json::object t;
    for (const auto& [path, opts] : spec.tmpfs) t[path] = opts;
    host["Tmpfs"] = std::move(t);
  }
  if (spec.shmBytes > 0) host["ShmSize"] = spec.shmBytes;
  if (spec.readonlyRootfs) host["ReadonlyRootfs"] = true;
  json::object body{{"Image", spec.image},
                    {"Labels", std::move(labels)},
                    {"Entrypoint", strings(spec.entrypoint)},
                    {"Cmd", strings(spec.cmd)},
                    {"User", "root"},
                    {"WorkingDir", "/"},
                    {"HostConfig", std::move(host)}};
  if (!spec.env.empty()) body["Env"] = strings(spec.env);
  if (spec.openStdin) {
    body["OpenStdin"] = true;
    body["StdinOnce"] = true;
  }
  Request req;
  req.method = "POST";
  req.path = "/containers/create?name=" + urlEncode(spec.name);
  req.body = json::serialize(body);
  req.timeout = timeout;
  call(std::move(req), {201});
}

void Engine::startContainer(const std::string& name, std::chrono::milliseconds timeout) {
  Request req;
  req.method = "POST";
  req.path = "/containers/" + urlEncode(name) + "/start";
  req.timeout = timeout;
  call(std::move(req), {204, 304});
}

Attachment Engine::attach(const std::string& name, std::chrono::milliseconds timeout) {
  return Attachment::open(client_.endpoint(), client_.negotiate(), name, timeout);
}

int Engine::waitContainer(const std::string& name, std::chrono::milliseconds timeout) {
  Request req;
  req.method = "POST";
  req.path = "/containers/" + urlEncode(name) + "/wait?condition=not-running";
  req.timeout = timeout;
  json::value v = parseJson(call(std::move(req), {200}), "wait");
  const auto* code = v.is_object() ? v.as_object().if_contains("StatusCode") : nullptr;
  if (!code || !code->is_int64()) throw DockerError("no exit code in the answer to wait");
  return static_cast<int>(code->get_int64());
}

void Engine::killContainer(const std::string& name) {
  Request req;
  req.method = "POST";
  req.path = "/containers/" + urlEncode(name) + "/kill";
  req.timeout = 30s;
  call(std::move(req), {204, 404, 409});
}

bool Engine::removeContainer(const std::string& name) {
  Request req;
  req.method = "DELETE";
  req.path = "/containers/" + urlEncode(name) + "?force=true&v=true";
  req.timeout = 60s;
  Response r = client_.send(req);
  // 409: removal already in progress elsewhere; the caller checks again.
  return r.status == 204 || r.status == 404;
}

std::optional<ContainerState> Engine::inspectContainer(const std::string& name) {
  Request req;
  req.path = "/containers/" + urlEncode(name) + "/json";
  req.timeout = 30s;
  Response r = call(std::move(req), {200, 404});
  if (r.status == 404) return std::nullopt;
  json::value v = parseJson(r, "inspect");
  ContainerState s;
  if (const auto* st = v.as_object().if_contains("State"); st && st->is_object()) {
    const auto& o = st->as_object();
    if (const auto* x = o.if_contains("Status"); x && x->is_string()) s.status = x->get_string();
    if (const auto* x = o.if_contains("Running"); x && x->is_bool()) s.running = x->get_bool();
    if (const auto* x = o.if_contains("OOMKilled"); x && x->is_bool()) s.oomKilled = x->get_bool();
    if (const auto* x = o.if_contains("ExitCode"); x && x->is_int64())
      s.exitCode = static_cast<int>(x->get_int64());
  }
  if (const auto* x = v.as_object().if_contains("Image"); x && x->is_string())
    s.imageId = x->get_string();
  if (const auto* ns = v.as_object().if_contains("NetworkSettings"); ns && ns->is_object())
    if (const auto* nets = ns->as_object().if_contains("Networks"); nets && nets->is_object())
      for (const auto& [k, _] : nets->as_object()) s.networks.emplace_back(k);
  return s;
}

void Engine::updateContainer(const std::string& name, std::int64_t memoryBytes,
                             std::int64_t pidsLimit) {
  json::object body;
  if (memoryBytes > 0) {
    body["Memory"] = memoryBytes;
    body["MemorySwap"] = memoryBytes;
  }
  if (pidsLimit > 0) body["PidsLimit"] = pidsLimit;
  if (body.empty()) return;
  Request req;
  req.method = "POST";
  req.path = "/containers/" + urlEncode(name) + "/update";
  req.body = json::serialize(body);
  req.timeout = 30s;
  call(std::move(req), {200});
}

void Engine::connectNetwork(const std::string& network, const std::string& container) {
  Request req;
  req.method = "POST";
  req.path = "/networks/" + urlEncode(network) + "/connect";
  req.body = json::serialize(json::object{{"Container", container}});
  req.timeout = 30s;
  call(std::move(req), {200});
}

void Engine::disconnectNetwork(const std::string& network, const std::string& container) {
  Request req;
  req.method = "POST";
  req.path = "/networks/" + urlEncode(network) + "/disconnect";
  req.body = json::serialize(json::object{{"Container", container}, {"Force", true}});
  req.timeout = 30s;
  call(std::move(req), {200});
}

std::vector<ContainerInfo> Engine::listByLabel(const std::string& key, const std::string& value) {
  json::object filters{{"label", json::array{key + "=" + value}}};
  Request req;
  req.path = "/containers/json?all=true&filters=" + urlEncode(json::serialize(filters));
  req.timeout = 30s;
  Response r = call(std::move(req), {200});
  std::vector<ContainerInfo> out;
  json::value v = parseJson(r, "container list");
  if (!v.is_array()) return out;
  for (const auto& c : v.as_array()) {
    if (!c.is_object()) continue;
    const auto& o = c.as_object();
    ContainerInfo info;
    if (const auto* x = o.if_contains("Id"); x && x->is_string()) info.id = x->get_string();
    if (const auto* x = o.if_contains("Names");
        x && x->is_array() && !x->as_array().empty() && x->as_array()[0].is_string()) {
      std::string n(x->as_array()[0].get_string());
      info.name = n.starts_with("/") ? n.substr(1) : n;
    }
    if (const auto* x = o.if_contains("Labels"); x && x->is_object())
      for (const auto& [k, lv] : x->as_object())
        if (lv.is_string()) info.labels[std::string(k)] = std::string(lv.get_string());
    out.push_back(std::move(info));
  }
  return out;
}

void Engine::putArchive(const std::string& name, const std::string& path, const std::string& tar,
                        std::chrono::milliseconds timeout) {
  Request req;
  req.method = "PUT";
  req.path = "/containers/" + urlEncode(name) + "/archive?path=" + urlEncode(path);
  req.body = tar;
  req.contentType = "application/x-tar";
  req.timeout = timeout;
  call(std::move(req), {200});
}

std::optional<std::string> Engine::getArchive(const std::string& name, const std::string& path,
                                              std::size_t maxBytes,
                                              std::chrono::milliseconds timeout) {
  Request req;
  req.path = "/containers/" + urlEncode(name) + "/archive?path=" + urlEncode(path);
  req.timeout = timeout;
  req.maxBody = maxBytes;
  Response r = call(std::move(req), {200, 404});
  if (r.status == 404) return std::nullopt;
  return std::move(r.body);
}

std::vector<std::string> Engine::imageTags() {
  Request req;
  req.path = "/images/json";
  req.timeout = 30s;
  json::value v = parseJson(call(std::move(req), {200}), "image list");
  std::vector<std::string> out;
  if (!v.is_array()) return out;
  for (const auto& img : v.as_array()) {
    if (!img.is_object()) continue;
    const auto* tags = img.as_object().if_contains("RepoTags");
    if (!tags || !tags->is_array()) continue;
    for (const auto& t : tags->as_array())
      if (t.is_string() && t.get_string() != "<none>:<none>") out.emplace_back(t.get_string());
  }
  return out;
}

std::optional<ImageInfo> Engine::inspectImage(const std::string& image) {
  Request req;
  req.path = "/images/" + urlEncode(image) + "/json";
  req.timeout = 30s;
  Response r = call(std::move(req), {200, 404});
  if (r.status == 404) return std::nullopt;
  json::value v = parseJson(r, "image inspect");
  if (!v.is_object()) throw DockerError("unreadable answer to image inspect");
  ImageInfo info;
  if (const auto* id = v.as_object().if_contains("Id"); id && id->is_string())
    info.id = id->get_string();
  const auto* cfg = v.as_object().if_contains("Config");
  const auto* labels = cfg && cfg->is_object() ? cfg->as_object().if_contains("Labels") : nullptr;
  if (labels && labels->is_object())
    for (const auto& [k, l] : labels->as_object())
      if (l.is_string()) info.labels[std::string(k)] = l.get_string();
  return info;
}

std::optional<std::string> Engine::imageLabel(const std::string& image, const std::string& key) {
  auto info = inspectImage(image);
  if (!info) return std::nullopt;
  auto it = info->labels.find(key);
  if (it == info->labels.end()) return std::nullopt;
  return it->second;
}

std::string Engine::loadImage(const std::filesystem::path& tarball,
                              std::chrono::milliseconds timeout) {
  Request req;
  req.method = "POST";
  req.path = "/images/load?quiet=true";
  req.bodyFile = tarball;
  req.contentType = "application/x-tar";
  req.timeout = timeout;
  Response r = call(std::move(req), {200});
  std::string loaded;
  forEachProgressLine(r.body, [&](const json::object& o) {
    const auto* s = o.if_contains("stream");
    if (!s || !s->is_string()) return;
    std::string_view text = s->get_string();
    for (std::string_view prefix : {"Loaded image: ", "Loaded image ID: "}) {
      if (auto p = text.find(prefix); p != std::string_view::npos) {
        std::string_view ref = text.substr(p + prefix.size());
        while (!ref.empty() && (ref.back() == '\n' || ref.back() == '\r')) ref.remove_suffix(1);
        if (loaded.empty()) loaded = ref;
      }
    }
  });
  if (loaded.empty()) throw DockerError("the engine loaded no image from the tarball");
  return loaded;
}

void Engine::importImage(const std::filesystem::path& rootTar, const std::string& repo,
                         const std::string& tag, const std::vector<std::string>& changes,
                         std::chrono::milliseconds timeout) {
  Request req;
  req.method = "POST";
  req.path = "/images/create?fromSrc=-&repo=" + urlEncode(repo) + "&tag=" + urlEncode(tag);
  for (const auto& c : changes) req.path += "&changes=" + urlEncode(c);
  req.bodyFile = rootTar;
  req.contentType = "application/x-tar";
  req.timeout = timeout;
  Response r = call(std::move(req), {200});
  forEachProgressLine(r.body, [](const json::object&) {});
}

void Engine::tagImage(const std::string& source, const std::string& repo, const std::string& tag) {
  Request req;
  req.method = "POST";
  req.path =
      "/images/" + urlEncode(source) + "/tag?repo=" + urlEncode(repo) + "&tag=" + urlEncode(tag);
  req.timeout = 30s;
  call(std::move(req), {200, 201});
}

void Engine::removeImage(const std::string& name, bool force) {
  Request req;
  req.method = "DELETE";
  req.path = "/images/" + urlEncode(name) + (force ? "?force=true" : "");
  req.timeout = 60s;
  call(std::move(req), {200, 404});
}

void Engine::saveImage(const std::string& name, const std::filesystem::path& dest) {
  std::ofstream out(dest, std::ios::binary | std::ios::trunc);
  if (!out) throw DockerError("cannot write " + dest.string());
  Request req;
  req.path = "/images/" + urlEncode(name) + "/get";
  req.timeout = 300s;
  req.sink = [&](std::string_view chunk) {
    out.write(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    return static_cast<bool>(out);
  };
  call(std::move(req), {200});
  out.close();
  if (!out) throw DockerError("cannot write " + dest.string());
}

void Engine::commit(const std::string& container, const std::string& repo) {
  Request req;
  req.method = "POST";
  req.path =
      "/commit?container=" + urlEncode(container) + "&repo=" + urlEncode(repo) + "&tag=latest";
  req.body = "{}";
  req.timeout = 120s;
  call(std::move(req), {201});
}

}  // namespace tango::docker
