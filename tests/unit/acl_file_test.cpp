// The ACL file parser: the documented example end to end, and a clear error, with the line and
// column, for every way a file can be wrong (a typo must never silently grant or deny).
#include "auth/acl_file.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

namespace wsedge::auth {
namespace {

using Names = std::vector<std::string>;

const char kExample[] = R"(# roles and their parents
[roles]
member = { parents = ["guest"] }
admin  = { parents = ["member"] }
# users (token `sub`) and the roles the file gives them, beside those in their token
[users]
alice = ["admin"]
# grants; [[deny]] has the same shape and wins
[[allow]]
roles = ["guest"]
resources = ["/chat", "chat:lobby"]
permissions = ["connect", "subscribe"]
[[allow]]
roles = ["member"]
resources = ["chat:*", "user:{sub}"]
permissions = ["*"]
[[deny]]
roles = ["guest"]
resources = ["chat:admin"]
permissions = ["publish"]
)";

// The AclError message parse_acl gives for `text`, "" when it parses.
std::string error_of(std::string_view text) {
  try {
    parse_acl(text, "acl.toml");
  } catch (const AclError& e) {
    return e.what();
  }
  return "";
}

#define EXPECT_ERROR(text, where, what)                                 \
  do {                                                                  \
    std::string msg = error_of(text);                                   \
    EXPECT_EQ(msg.rfind(where, 0), 0u) << "message: " << msg;           \
    EXPECT_NE(msg.find(what), std::string::npos) << "message: " << msg; \
  } while (0)

TEST(AclFile, TheDocumentedExample) {
  AclModel m = parse_acl(kExample, "acl.toml");
  EXPECT_EQ(m.parents["member"], Names{"guest"});
  EXPECT_EQ(m.parents["admin"], Names{"member"});
  EXPECT_EQ(m.users["alice"], Names{"admin"});
  ASSERT_EQ(m.rules.size(), 3u);
  EXPECT_EQ(m.rules[1].resources, (Names{"chat:*", "user:{sub}"}));
  EXPECT_FALSE(m.rules[1].deny);
  EXPECT_TRUE(m.rules[2].deny);

  auto acl = Acl::compile(m);
  auto alice = acl->principal("alice", {});
  auto guest = acl->principal("", Names{"guest"});
  auto bob = acl->principal("bob", Names{"member"});
  const PermMask connect = acl->perm("connect"), subscribe = acl->perm("subscribe"),
                 publish = acl->perm("publish");
  EXPECT_TRUE(acl->allowed(guest, "/chat", connect));
  EXPECT_TRUE(acl->allowed(guest, "chat:lobby", subscribe));
  EXPECT_FALSE(acl->allowed(guest, "chat:lobby", publish));
  EXPECT_TRUE(acl->allowed(alice, "chat:lobby", subscribe | publish));
  EXPECT_TRUE(acl->allowed(alice, "user:alice", publish));
  EXPECT_FALSE(acl->allowed(alice, "user:bob", publish));
  EXPECT_TRUE(acl->allowed(bob, "user:bob", subscribe));
  // The guest deny reaches admins through member -> guest.
  EXPECT_FALSE(acl->allowed(alice, "chat:admin", publish));
  EXPECT_TRUE(acl->allowed(alice, "chat:admin", subscribe));
}

TEST(AclFile, EmptyFileIsAnEmptyAcl) {
  AclModel m = parse_acl("# nothing yet\n", "acl.toml");
  EXPECT_TRUE(m.users.empty() && m.parents.empty() && m.rules.empty());
  AclModel roles = parse_acl("[roles]\nguest = {}\n[users]\nbob = []\n", "acl.toml");
  EXPECT_TRUE(roles.parents.contains("guest"));
  EXPECT_TRUE(roles.users["bob"].empty());
}

TEST(AclFile, BadTomlGivesLineAndColumn) {
  EXPECT_ERROR("[roles]\nmember = { parents = [\"guest\" }\n", "acl.toml:2:", "");
  EXPECT_ERROR("[users]\nalice = [\"a\"]\nalice = [\"b\"]\n", "acl.toml:3:", "");
  EXPECT_ERROR("x = \"\\q\"", "acl.toml:1:", "");
  EXPECT_ERROR(std::string_view("a = 1\0", 6), "acl.toml:1:", "");
}

TEST(AclFile, UnknownKeysAreErrors) {
  EXPECT_ERROR("[role]\n", "acl.toml:1:2:", "unknown top-level key 'role'");
  EXPECT_ERROR("[[alow]]\nroles = [\"a\"]\n", "acl.toml:1:3:", "unknown top-level key 'alow'");
  EXPECT_ERROR("[roles]\nmember = { parent = [\"guest\"] }\n",
               "acl.toml:2:12:", "roles.member: unknown key 'parent'");
  EXPECT_ERROR("[[allow]]\nroles = [\"a\"]\nresource = [\"x\"]\npermissions = [\"p\"]\n",
               "acl.toml:3:1:", "[[allow]]: unknown key 'resource'");
  EXPECT_ERROR("[[deny]]\nroles = [\"a\"]\nresources = [\"x\"]\npermissions = [\"p\"]\nwhy = 1\n",
               "acl.toml:5:1:", "[[deny]]: unknown key 'why'");
}

TEST(AclFile, WrongTypesAreErrors) {
  EXPECT_ERROR("roles = 3\n", "acl.toml:1:9:", "roles: expected a table");
  EXPECT_ERROR("users = [\"alice\"]\n", "acl.toml:1:9:", "users: expected a table");
  EXPECT_ERROR("[roles]\nmember = \"guest\"\n", "acl.toml:2:10:", "roles.member: expected a table");
  EXPECT_ERROR("[roles]\nmember = { parents = \"guest\" }\n",
               "acl.toml:2:22:", "roles.member.parents: expected an array of strings");
  EXPECT_ERROR("[users]\nalice = \"admin\"\n",
               "acl.toml:2:9:", "users.alice: expected an array of strings");
  EXPECT_ERROR("[users]\nalice = [\"admin\", 1]\n",
               "acl.toml:2:19:", "users.alice: expected a string");
  EXPECT_ERROR("[users]\nalice = [[\"admin\"]]\n", "acl.toml:2:", "users.alice: expected a string");
  EXPECT_ERROR("allow = 3\n", "acl.toml:1:9:", "allow: expected [[allow]] tables");
  EXPECT_ERROR("[allow]\nroles = [\"a\"]\n", "acl.toml:1:", "allow: expected [[allow]] tables");
  EXPECT_ERROR("deny = []\n", "acl.toml:1:", "deny: expected [[deny]] tables");
  EXPECT_ERROR("[[allow]]\nroles = \"a\"\nresources = [\"x\"]\npermissions = [\"p\"]\n",
               "acl.toml:2:9:", "[[allow]].roles: expected an array of strings");
  EXPECT_ERROR("[[allow]]\nroles = [\"a\"]\nresources = [\"x\"]\npermissions = [true]\n",
               "acl.toml:4:16:", "[[allow]].permissions: expected a string");
}

TEST(AclFile, EmptyNamesAndListsAreErrors) {
  EXPECT_ERROR("[roles]\n\"\" = {}\n", "acl.toml:2:1:", "empty role name");
  EXPECT_ERROR("[users]\n\"\" = [\"a\"]\n", "acl.toml:2:1:", "empty user name");
  EXPECT_ERROR("[users]\nalice = [\"\"]\n", "acl.toml:2:10:", "users.alice: empty string");
  EXPECT_ERROR("[[allow]]\nroles = []\nresources = [\"x\"]\npermissions = [\"p\"]\n",
               "acl.toml:2:9:", "[[allow]].roles: empty list");
  EXPECT_ERROR("[[allow]]\nroles = [\"a\"]\nresources = [\"\"]\npermissions = [\"p\"]\n",
               "acl.toml:3:14:", "[[allow]].resources: empty string");
  EXPECT_ERROR("[[allow]]\nroles = [\"a\"]\npermissions = [\"p\"]\n",
               "acl.toml:1:", "[[allow]]: missing 'resources'");
}

TEST(AclFile, LoadFile) {
  char path[] = "/tmp/wsedge-acl-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, kExample, sizeof kExample - 1), static_cast<ssize_t>(sizeof kExample - 1));
  close(fd);
  EXPECT_EQ(load_acl_file(path).rules.size(), 3u);

  std::FILE* f = std::fopen(path, "w");
  std::fputs("[roles]\nmember = { parents = 1 }\n", f);
  std::fclose(f);
  try {
    load_acl_file(path);
    ADD_FAILURE() << "a wrong type loaded";
  } catch (const AclError& e) {
    EXPECT_EQ(std::string(e.what()).rfind(std::string(path).append(":2:"), 0), 0u) << e.what();
  }
  unlink(path);

  for (const char* bad : {"/nonexistent/acl.toml", "/tmp"}) {
    try {
      load_acl_file(bad);
      ADD_FAILURE() << bad << " loaded";
    } catch (const AclError& e) {
      EXPECT_EQ(std::string(e.what()).rfind(std::string(bad).append(": cannot read"), 0), 0u)
          << e.what();
    }
  }
}

}  // namespace
}  // namespace wsedge::auth
