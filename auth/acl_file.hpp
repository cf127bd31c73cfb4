#pragma once
// The ACL file: TOML, read into an AclModel (auth/acl.hpp) that the caller then compiles with
// Acl::compile. The format:
//
//   # Roles and their parents (a role inherits every grant of its parents, transitively).
//   # A role needs no entry here to exist: naming it in [users] or a rule is enough.
//   [roles]
//   guest  = {}
//   member = { parents = ["guest"] }
//   admin  = { parents = ["member"] }
//
//   # Users (a token's `sub`) and the roles this file gives them, beside those in their token.
//   [users]
//   alice = ["admin"]
//
//   # Grants: each listed role gets each listed permission on each listed resource.
//   [[allow]]
//   roles = ["guest"]
//   resources = ["/chat", "chat:lobby"]
//   permissions = ["connect", "subscribe"]
//
//   [[allow]]
//   roles = ["member"]
//   resources = ["chat:*", "user:{sub}"]
//   permissions = ["*"]
//
//   # [[deny]] has the same shape and wins over any allow, from any role.
//   [[deny]]
//   roles = ["guest"]
//   resources = ["chat:admin"]
//   permissions = ["publish"]
//
// Resources are request paths (`/chat`, permission `connect`) and channel names (`chat:lobby`,
// permissions `subscribe` and `publish`). A trailing `*` matches any suffix (`*` alone matches
// everything); `{sub}` stands for the principal's user name and never matches an anonymous one.
// Permission `*` is every permission. Up to 31 distinct permission names.
//
// Strict on purpose: an unknown key anywhere, a value of the wrong type, an empty name or an
// empty list in a rule is an error, because a typo (`parent =`, `[[alow]]`) would otherwise
// silently grant or deny.
#include <string>
#include <string_view>

#include "auth/acl.hpp"

namespace wsedge::auth {

// Parses ACL TOML text. `source` names it in errors ("acl.toml:12:3: ..."). Throws AclError with
// toml++'s parse error and its line:column, or ours (unknown key, wrong type, empty name).
// Does not compile: Acl::compile may still refuse the model (a cycle, too many permissions).
AclModel parse_acl(std::string_view text, std::string_view source);

// Reads and parses `path` (named in errors as given); AclError("PATH: cannot read: ...") when
// it cannot be read.
AclModel load_acl_file(const std::string& path);

}  // namespace wsedge::auth
