#include "tango/ec2/Ec2Client.hpp"

#include <curl/curl.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <thread>

namespace tango::ec2 {

namespace {

constexpr const char* kVersion = "2016-11-15";
constexpr std::size_t kMaxAnswer = 16 * 1024 * 1024;

// The answer's XML, freed with the object; never resolves entities or
// fetches anything (XML_PARSE_NONET, no NOENT).
struct Doc {
  explicit Doc(const std::string& xml)
      : doc(xmlReadMemory(
                xml.data(), static_cast<int>(xml.size()), "ec2.xml", nullptr,
                XML_PARSE_NONET | XML_PARSE_NOBLANKS | XML_PARSE_NOERROR | XML_PARSE_NOWARNING),
            xmlFreeDoc) {}
  xmlNode* root() const { return doc ? xmlDocGetRootElement(doc.get()) : nullptr; }
  std::unique_ptr<xmlDoc, decltype(&xmlFreeDoc)> doc;
};

bool named(const xmlNode* n, const char* name) {
  return n && n->type == XML_ELEMENT_NODE && xmlStrcmp(n->name, BAD_CAST name) == 0;
}

xmlNode* child(const xmlNode* n, const char* name) {
  if (!n) return nullptr;
  for (xmlNode* c = n->children; c; c = c->next)
    if (named(c, name)) return c;
  return nullptr;
}

std::vector<xmlNode*> items(const xmlNode* set) {
  std::vector<xmlNode*> out;
  if (!set) return out;
  for (xmlNode* c = set->children; c; c = c->next)
    if (named(c, "item")) out.push_back(c);
  return out;
}

std::string text(const xmlNode* n) {
  if (!n) return "";
  std::unique_ptr<xmlChar, void (*)(void*)> s(xmlNodeGetContent(n), xmlFree);
  return s ? std::string(reinterpret_cast<const char*>(s.get())) : "";
}

std::string textOf(const xmlNode* n, const char* name) { return text(child(n, name)); }

// Every element called `name` below `n`, depth first.
void findAll(xmlNode* n, const char* name, std::vector<xmlNode*>& out) {
  for (xmlNode* c = n ? n->children : nullptr; c; c = c->next) {
    if (named(c, name)) out.push_back(c);
    findAll(c, name, out);
  }
}

std::vector<Instance> instancesIn(const std::string& xml) {
  Doc d(xml);
  std::vector<xmlNode*> sets;
  if (d.root()) findAll(d.root(), "instancesSet", sets);
  std::vector<Instance> out;
  for (xmlNode* set : sets) {
    for (xmlNode* it : items(set)) {
      Instance i;
      i.id = textOf(it, "instanceId");
      i.state = textOf(child(it, "instanceState"), "name");
      i.publicIp = textOf(it, "ipAddress");
      i.privateIp = textOf(it, "privateIpAddress");
      i.imageId = textOf(it, "imageId");
      for (xmlNode* t : items(child(it, "tagSet"))) i.tags[textOf(t, "key")] = textOf(t, "value");
      if (!i.id.empty()) out.push_back(std::move(i));
    }
  }
  return out;
}

std::string escape(const std::string& s) {
  std::unique_ptr<char, void (*)(void*)> e(
      curl_easy_escape(nullptr, s.data(), static_cast<int>(s.size())), curl_free);
  return e ? e.get() : "";
}

}  // namespace

bool Ec2Error::retryable() const {
  return code == "RequestLimitExceeded" || code == "Throttling" ||
         code == "InsufficientInstanceCapacity" || code == "ServiceUnavailable" ||
         code == "Unavailable" || code == "InternalError" || code == "Network" || httpStatus >= 500;
}

std::string endpointFor(const std::string& configured, const std::string& region,
                        const std::map<std::string, std::string>& env) {
  for (const char* k : {"AWS_ENDPOINT_URL_EC2", "AWS_ENDPOINT_URL"})
    if (auto it = env.find(k); it != env.end() && !it->second.empty()) return it->second;
  if (!configured.empty()) return configured;
  return "https://ec2." + region + ".amazonaws.com";
}

Client::Client(std::string endpoint, std::string region, Credentials creds)
    : endpoint_(std::move(endpoint)), region_(std::move(region)), creds_(std::move(creds)) {
  if (endpoint_.empty() || endpoint_.back() != '/') endpoint_ += '/';
}

std::string Client::once(const std::string& action, const std::string& body, long& httpStatus) {
  ++calls_;
  std::unique_ptr<CURL, void (*)(CURL*)> h(curl_easy_init(), curl_easy_cleanup);
  if (!h) throw Ec2Error("Network", "curl_easy_init failed", 0);
  std::string answer;
  const std::string sigv4 = "aws:amz:" + region_ + ":ec2";
  curl_slist* headers =
      curl_slist_append(nullptr, "Content-Type: application/x-www-form-urlencoded; charset=utf-8");
  if (!creds_.sessionToken.empty())
    headers = curl_slist_append(headers, ("X-Amz-Security-Token: " + creds_.sessionToken).c_str());
  std::unique_ptr<curl_slist, void (*)(curl_slist*)> hl(headers, curl_slist_free_all);
  CURL* c = h.get();
  curl_easy_setopt(c, CURLOPT_URL, endpoint_.c_str());
  curl_easy_setopt(c, CURLOPT_POST, 1L);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_AWS_SIGV4, sigv4.c_str());
  curl_easy_setopt(c, CURLOPT_USERNAME, creds_.accessKeyId.c_str());
  curl_easy_setopt(c, CURLOPT_PASSWORD, creds_.secretAccessKey.c_str());
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
  curl_easy_setopt(
      c, CURLOPT_WRITEFUNCTION, +[](char* p, size_t, size_t n, void* ud) -> size_t {
        auto* s = static_cast<std::string*>(ud);
        if (s->size() + n > kMaxAnswer) return 0;  // an answer no EC2 call needs
        s->append(p, n);
        return n;
      });
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &answer);
  const CURLcode rc = curl_easy_perform(c);
  if (rc != CURLE_OK)
    throw Ec2Error("Network", action + " to " + endpoint_ + ": " + curl_easy_strerror(rc), 0);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &httpStatus);
  return answer;
}

std::string Client::call(const std::string& action, const Params& params,
                         Clock::time_point deadline) {
  std::string body = "Action=" + escape(action) + "&Version=" + kVersion;
  for (const auto& [k, v] : params) body += "&" + escape(k) + "=" + escape(v);
  auto backoff = std::chrono::milliseconds(250);
  for (;;) {
    long status = 0;
    try {
      std::string answer = once(action, body, status);
      if (status >= 200 && status < 300) return answer;
      Doc d(answer);
      std::vector<xmlNode*> errors;
      if (d.root()) findAll(d.root(), "Error", errors);
      std::string code =
          errors.empty() ? "HTTP" + std::to_string(status) : textOf(errors[0], "Code");
      std::string message =
          errors.empty() ? "no error in the answer" : textOf(errors[0], "Message");
      if (message.size() > 300) message.resize(300);
      throw Ec2Error(code, message, static_cast<int>(status));
    } catch (const Ec2Error& e) {
      if (!e.retryable() || Clock::now() + backoff >= deadline) throw;
    }
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(8000));
  }
}

std::vector<Instance> Client::runInstance(const std::string& ami, const std::string& type,
                                          const std::string& keyName,
                                          const std::vector<std::string>& securityGroups,
                                          const std::map<std::string, std::string>& tags,
                                          const std::string& clientToken,
                                          Clock::time_point deadline) {
  Params p{{"ImageId", ami},
           {"MinCount", "1"},
           {"MaxCount", "1"},
           {"InstanceType", type},
           {"ClientToken", clientToken}};
  if (!keyName.empty()) p.emplace_back("KeyName", keyName);
  int g = 0;
  for (const auto& sg : securityGroups)
    p.emplace_back(
        (sg.starts_with("sg-") ? "SecurityGroupId." : "SecurityGroup.") + std::to_string(++g), sg);
  p.emplace_back("TagSpecification.1.ResourceType", "instance");
  int t = 0;
  for (const auto& [k, v] : tags) {
    ++t;
    p.emplace_back("TagSpecification.1.Tag." + std::to_string(t) + ".Key", k);
    p.emplace_back("TagSpecification.1.Tag." + std::to_string(t) + ".Value", v);
  }
  return instancesIn(call("RunInstances", p, deadline));
}

std::vector<Instance> Client::describeInstances(
    const std::map<std::string, std::vector<std::string>>& filters,
    const std::vector<std::string>& ids, Clock::time_point deadline) {
  Params p;
  int f = 0;
  for (const auto& [name, values] : filters) {
    const std::string pre = "Filter." + std::to_string(++f);
    p.emplace_back(pre + ".Name", name);
    int v = 0;
    for (const auto& val : values) p.emplace_back(pre + ".Value." + std::to_string(++v), val);
  }
  int i = 0;
  for (const auto& id : ids) p.emplace_back("InstanceId." + std::to_string(++i), id);
  return instancesIn(call("DescribeInstances", p, deadline));
}

void Client::terminateInstances(const std::vector<std::string>& ids, Clock::time_point deadline) {
  Params p;
  int i = 0;
  for (const auto& id : ids) p.emplace_back("InstanceId." + std::to_string(++i), id);
  call("TerminateInstances", p, deadline);
}

std::optional<std::string> Client::findImage(const std::string& nameOrId,
                                             Clock::time_point deadline) {
  auto first = [](const std::string& xml) -> std::optional<std::string> {
    Doc d(xml);
    std::vector<xmlNode*> sets;
    if (d.root()) findAll(d.root(), "imagesSet", sets);
    for (xmlNode* s : sets)
      for (xmlNode* it : items(s))
        if (auto id = textOf(it, "imageId"); !id.empty()) return id;
    return std::nullopt;
  };
  if (nameOrId.starts_with("ami-")) {
    try {
      return first(call("DescribeImages", {{"ImageId.1", nameOrId}}, deadline));
    } catch (const Ec2Error& e) {
      if (e.code.starts_with("InvalidAMIID")) return std::nullopt;
      throw;
    }
  }
  for (const char* filter : {"tag:Name", "name"}) {
    if (auto id =
            first(call("DescribeImages",
                       {{"Filter.1.Name", filter}, {"Filter.1.Value.1", nameOrId}}, deadline)))
      return id;
  }
  return std::nullopt;
}

std::vector<Image> Client::ownImages(Clock::time_point deadline) {
  Doc d(call("DescribeImages", {{"Owner.1", "self"}}, deadline));
  std::vector<xmlNode*> sets;
  if (d.root()) findAll(d.root(), "imagesSet", sets);
  std::vector<Image> out;
  for (xmlNode* s : sets)
    for (xmlNode* it : items(s)) {
      Image img{textOf(it, "imageId"), textOf(it, "name"), ""};
      for (xmlNode* t : items(child(it, "tagSet")))
        if (textOf(t, "key") == "Name") img.nameTag = textOf(t, "value");
      if (!img.id.empty()) out.push_back(std::move(img));
    }
  return out;
}

KeyPair Client::createKeyPair(const std::string& name, Clock::time_point deadline) {
  Doc d(call("CreateKeyPair", {{"KeyName", name}}, deadline));
  KeyPair k{name, textOf(d.root(), "keyMaterial")};
  if (k.privateKey.empty()) throw Ec2Error("InvalidAnswer", "CreateKeyPair gave no key", 200);
  return k;
}

void Client::deleteKeyPair(const std::string& name, Clock::time_point deadline) {
  call("DeleteKeyPair", {{"KeyName", name}}, deadline);
}

std::string Client::ensureSecurityGroup(const std::string& name, const std::string& sshCidr,
                                        Clock::time_point deadline) {
  std::string id;
  {
    Doc d(call("DescribeSecurityGroups",
               {{"Filter.1.Name", "group-name"}, {"Filter.1.Value.1", name}}, deadline));
    std::vector<xmlNode*> sets;
    if (d.root()) findAll(d.root(), "securityGroupInfo", sets);
    for (xmlNode* s : sets)
      for (xmlNode* it : items(s))
        if (textOf(it, "groupName") == name) id = textOf(it, "groupId");
  }
  if (id.empty()) {
    Doc made(call("CreateSecurityGroup",
                  {{"GroupName", name},
                   {"GroupDescription", "Tango autograding instances: SSH from the service only"}},
                  deadline));
    id = textOf(made.root(), "groupId");
  }
  // Also on a group that exists: one made by a run that died before this
  // call would otherwise admit nothing, and every VM would fail waitVM.
  try {
    call("AuthorizeSecurityGroupIngress",
         {{"GroupId", id},
          {"IpPermissions.1.IpProtocol", "tcp"},
          {"IpPermissions.1.FromPort", "22"},
          {"IpPermissions.1.ToPort", "22"},
          {"IpPermissions.1.IpRanges.1.CidrIp", sshCidr}},
         deadline);
  } catch (const Ec2Error& e) {
    if (e.code != "InvalidPermission.Duplicate") throw;
  }
  return id;
}

}  // namespace tango::ec2
