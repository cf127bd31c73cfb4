// The config file (--config): the one mapping rule from keys to flags (tables are prefixes),
// the value types, the override rule, and an error with FILE:LINE:COLUMN and the key for
// everything a file can get wrong (a typo must never be ignored, nor read as something else).
// Then what a reload may change (reloadable) and what it names as needing a restart.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "app/flags.hpp"

namespace wsedge::app {
namespace {

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/wsedge-config-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/wsedge.toml";
  }
  void TearDown() override {
    std::remove(path_.c_str());
    rmdir(dir_.c_str());
  }

  // Parses `--config FILE` (the file holding `text`) followed by `more` flags.
  Flags parse(const std::string& text, std::vector<std::string> more = {}) {
    std::FILE* f = std::fopen(path_.c_str(), "wb");
    std::fwrite(text.data(), 1, text.size(), f);
    std::fclose(f);
    std::vector<std::string> args = {"--config", path_};
    args.insert(args.end(), more.begin(), more.end());
    return parse_flags(args);
  }
  // The error parse() throws, with the file's path cut to "F".
  std::string error(const std::string& text, std::vector<std::string> more = {}) {
    try {
      parse(text, std::move(more));
    } catch (const std::invalid_argument& e) {
      std::string msg = e.what(), out;
      for (std::size_t i = 0; i < msg.size();) {
        bool path = msg.compare(i, path_.size(), path_) == 0;
        out.push_back(path ? 'F' : msg[i]);
        i += path ? path_.size() : 1;
      }
      return out;
    }
    return "";
  }

  std::string dir_, path_;
};

std::vector<std::string> addresses(const Flags& f) {
  std::vector<std::string> out;
  for (const io::Address& a : f.server.listen) out.push_back(a.to_string());
  return out;
}

TEST_F(ConfigTest, KeysAreFlagNames) {
  Flags f = parse(
      "plain = true\n"
      "listen = [\"127.0.0.1:7001\", \"[::1]:7002\"]\n"
      "cores = 1\n"
      "max-message = \"4096\"\n"  // a number as a string is the flag's text as well
      "app = \"echo\"\n");
  EXPECT_TRUE(f.server.plain);
  EXPECT_EQ(addresses(f), (std::vector<std::string>{"127.0.0.1:7001", "[::1]:7002"}));
  EXPECT_EQ(f.server.cores, 1u);
  EXPECT_EQ(f.server.endpoint.max_message, 4096u);
  EXPECT_TRUE(f.echo);
  EXPECT_EQ(f.config_file, path_);
}

TEST_F(ConfigTest, TablesAndDottedKeysArePrefixes) {
  Flags f = parse(
      "plain = true\n"
      "first-byte.timeout = 4000\n"  // a dotted key is a path as well
      "[auth]\n"
      "leeway = 7\n"
      "issuer = \"https://issuer.example\"\n"
      "audience = [\"a\", \"b\"]\n"
      "[backend]\n"
      "grace = 1234\n"
      "[max]\n"
      "message = 999\n"
      "[handshake.rate]\n"
      "per-ip = 5\n");
  EXPECT_EQ(f.server.endpoint.first_byte_timeout_ms, 4000u);
  EXPECT_EQ(f.auth.verify.leeway_s, 7u);
  EXPECT_EQ(f.auth.verify.issuer, "https://issuer.example");
  EXPECT_EQ(f.auth.verify.audiences, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(f.bridge.grace_ms, 1234u);
  EXPECT_EQ(f.server.endpoint.max_message, 999u);
  EXPECT_EQ(f.server.endpoint.handshake_rate_per_ip, 5u);
}

TEST_F(ConfigTest, TlsPairsByPosition) {
  Flags f = parse(
      "[tls]\n"
      "key = [\"a.key\", \"b.key\"]\n"  // before cert in the file: pairs by position still
      "cert = [\"a.crt\", \"b.crt\"]\n");
  ASSERT_EQ(f.server.tls.certs.size(), 2u);
  EXPECT_EQ(f.server.tls.certs[0].cert_file, "a.crt");
  EXPECT_EQ(f.server.tls.certs[0].key_file, "a.key");
  EXPECT_EQ(f.server.tls.certs[1].cert_file, "b.crt");
  EXPECT_EQ(f.server.tls.certs[1].key_file, "b.key");
}

TEST_F(ConfigTest, SwitchFalseIsNotGiven) {
  EXPECT_FALSE(parse("plain = true\nreuse-port = false\n").server.reuse_port);
  EXPECT_TRUE(parse("plain = true\nreuse-port = true\n").server.reuse_port);
  // plain = false: wss, which needs a certificate: the same check as without the key.
  EXPECT_EQ(error("plain = false\n"), error(""));
  EXPECT_NE(error(""), "");
}

TEST_F(ConfigTest, RoutesAndRepeatedValues) {
  Flags f = parse(
      "plain = true\n"
      "route = [\"/chat=tcp://127.0.0.1:7001;control=on\", \"/feed=tcp://127.0.0.1:7002\"]\n"
      "allowed-origin = [\"https://a.example\", \"https://*.b.example\"]\n");
  ASSERT_EQ(f.bridge.routes.size(), 2u);
  EXPECT_EQ(f.bridge.routes[0].path, "/chat");
  EXPECT_TRUE(f.bridge.routes[0].control);
  EXPECT_EQ(f.bridge.routes[1].endpoints, (std::vector<std::string>{"tcp://127.0.0.1:7002"}));
  EXPECT_EQ(f.server.endpoint.allowed_origins.size(), 2u);
}

TEST_F(ConfigTest, DeflateIsOnWithoutContextByDefaultAndRoutesChooseTheirOwn) {
  Flags d = parse("plain = true\n");
  EXPECT_EQ(d.server.endpoint.deflate.mode, ws::DeflateMode::kNoContextTakeover);
  EXPECT_EQ(d.server.endpoint.deflate.min_size, 64u);
  Flags f = parse(
      "plain = true\ndeflate = \"context-takeover\"\ndeflate-min-size = 10\n"
      "deflate-level = 9\ndeflate-context-memory = 1000000\n"
      "route = [\"/a=tcp://127.0.0.1:7001;deflate=off\", \"/b=tcp://127.0.0.1:7002\"]\n");
  EXPECT_EQ(f.server.endpoint.deflate,
            (ws::DeflateConfig{ws::DeflateMode::kContextTakeover, 10, 9, 1000000}));
  EXPECT_EQ(f.bridge.routes[0].deflate, ws::DeflateMode::kOff);
  EXPECT_EQ(f.bridge.routes[1].deflate, ws::DeflateMode::kDefault);
  EXPECT_EQ(parse("plain = true\n", {"--deflate", "off"}).server.endpoint.deflate.mode,
            ws::DeflateMode::kOff);
  EXPECT_EQ(error("plain = true\ndeflate = \"yes\"\n"),
            "F:2:11: deflate: --deflate: off, no-context-takeover or context-takeover, not 'yes'");
  EXPECT_EQ(error("plain = true\ndeflate-level = 0\n"),
            "F:2:17: deflate-level: --deflate-level: 0 is outside 1..9");
  EXPECT_NE(error("plain = true\nroute = \"/a=tcp://127.0.0.1:1;deflate=max\"\n")
                .find("off, no-context-takeover or context-takeover, not 'max'"),
            std::string::npos);
  // A reload changes what new connections negotiate; the running ones keep theirs.
  Flags r = reloadable(d, f);
  EXPECT_EQ(r.server.endpoint.deflate.mode, ws::DeflateMode::kContextTakeover);
}

TEST_F(ConfigTest, CommandLineReplacesEveryValueOfTheFile) {
  const std::string file =
      "plain = true\n"
      "listen = [\"127.0.0.1:7001\", \"127.0.0.1:7002\"]\n"
      "max-message = 1000\n"
      "allowed-origin = [\"https://a.example\", \"https://b.example\"]\n";
  Flags f = parse(file, {"--listen", "127.0.0.1:7003", "--max-message=2000", "--allowed-origin",
                         "https://c.example"});
  EXPECT_EQ(addresses(f), (std::vector<std::string>{"127.0.0.1:7003"}));
  EXPECT_EQ(f.server.endpoint.max_message, 2000u);
  EXPECT_EQ(f.server.endpoint.allowed_origins, (std::vector<std::string>{"https://c.example"}));
  // Keys the command line does not name keep the file's values.
  Flags g = parse(file, {"--cores", "1"});
  EXPECT_EQ(g.server.endpoint.max_message, 1000u);
  EXPECT_EQ(addresses(g).size(), 2u);
  // A bad value in the file for a flag the command line gives is not looked at.
  EXPECT_EQ(error("plain = true\nmax-message = 0\n", {"--max-message", "5"}), "");
}

TEST_F(ConfigTest, UnknownKeysAreErrorsWithLineAndColumn) {
  EXPECT_EQ(error("plain = true\n  max-mesage = 5\n"),
            "F:2:3: max-mesage: unknown key: no flag --max-mesage (see wsedge --help)");
  // A table that is no flag's prefix: its keys are unknown, named with the prefix.
  EXPECT_EQ(error("plain = true\n[limits]\nmax-message = 5\n"),
            "F:3:1: limits-max-message: unknown key: no flag --limits-max-message (see wsedge "
            "--help)");
  // What is about the file or the program is not configuration.
  EXPECT_EQ(error("plain = true\nconfig = \"other.toml\"\n"),
            "F:2:1: config: only on the command line");
  EXPECT_EQ(error("plain = true\ncheck-config = true\n"),
            "F:2:1: check-config: only on the command line");
}

TEST_F(ConfigTest, WrongTypesAreErrors) {
  EXPECT_EQ(error("plain = 1\n"), "F:1:9: plain: a switch: true or false");
  EXPECT_EQ(error("plain = true\ncores = true\n"),
            "F:2:9: cores: expected a string or an integer (N)");
  EXPECT_EQ(error("plain = true\nmax-message = 1.5\n"),
            "F:2:15: max-message: expected a string or an integer (BYTES)");
  EXPECT_EQ(error("plain = true\ncores = [1, 2]\n"), "F:2:9: cores: takes one value, not an array");
  EXPECT_EQ(error("plain = true\nlisten = [\"127.0.0.1:1\", 2.5]\n"),
            "F:2:26: listen: expected a string or an integer (HOST:PORT[;proxy-protocol])");
  EXPECT_EQ(error("plain = true\n[[route]]\npath = \"/\"\n"),
            "F:2:1: route: expected a string or an integer (PATH=ENDPOINT[,...][;OPTS])");
}

TEST_F(ConfigTest, BadValuesGiveTheFlagsOwnError) {
  // The file's value goes through the same Spec::set as the flag: the same message, with
  // where it came from in front.
  std::string flag_error;
  try {
    parse_flags(std::vector<std::string>{"--plain", "--max-message", "0"});
  } catch (const std::invalid_argument& e) {
    flag_error = e.what();
  }
  ASSERT_NE(flag_error, "");
  EXPECT_EQ(error("plain = true\nmax-message = 0\n"), "F:2:15: max-message: " + flag_error);
  EXPECT_EQ(error("plain = true\n[auth]\ntoken-from = \"header,nowhere\"\n"),
            "F:3:14: auth-token-from: --auth-token-from: header, protocol, cookie or query, not "
            "'nowhere'");
  EXPECT_EQ(error("plain = true\nlisten = [\"127.0.0.1:1\", \"nohost\"]\n"),
            "F:2:26: listen: expected HOST:PORT, got 'nohost'");
}

TEST_F(ConfigTest, EveryErrorIsReported) {
  // The reader's (names, types) in file order, then the values'.
  EXPECT_EQ(error("plain = 1\nmax-message = \"x\"\nbogus = 1\n"),
            "F:1:9: plain: a switch: true or false\n"
            "F:3:1: bogus: unknown key: no flag --bogus (see wsedge --help)\n"
            "F:2:15: max-message: --max-message: expected a number, got 'x'");
}

TEST_F(ConfigTest, AFlagGivenTwiceInTheFileIsAnError) {
  EXPECT_EQ(error("plain = true\nauth-leeway = 5\n[auth]\nleeway = 6\n"),
            "F:4:1: auth-leeway: given twice (first at F:2:1)");
}

TEST_F(ConfigTest, SyntaxErrorsHaveLineAndColumn) {
  std::string e = error("plain = true\nmax-message = \n");
  EXPECT_EQ(e.rfind("F:2:15: ", 0), 0u) << e;
  EXPECT_EQ(error("plain = true\nplain = true\n"),
            "F:2:9: Error while parsing key-value pair: cannot redefine existing boolean 'plain'");
}

TEST_F(ConfigTest, AFileThatCannotBeReadIsNamed) {
  try {
    parse_flags(std::vector<std::string>{"--config", dir_ + "/missing.toml"});
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()),
              dir_ + "/missing.toml: cannot read: No such file or directory");
  }
  // A directory reads as an error too, never as an empty (valid) config.
  EXPECT_THROW(parse_flags(std::vector<std::string>{"--config", dir_, "--plain"}),
               std::invalid_argument);
}

TEST_F(ConfigTest, ReloadTakesLimitsAndKeepsWhatNeedsARestart) {
  Flags running = parse("plain = true\ncores = 1\nlisten = \"127.0.0.1:7001\"\n");
  running.server.endpoint.pages.push_back({"/", "text/html", "page"});
  Flags next = parse(
      "plain = true\ncores = 2\nlisten = \"127.0.0.1:7009\"\nmax-message = 77\n"
      "allowed-origin = \"https://a.example\"\nmax-connections-per-ip = 3\n");
  EXPECT_EQ(restart_keys(next, running), (std::vector<std::string>{"listen", "cores"}));
  Flags r = reloadable(running, next);
  EXPECT_EQ(r.server.cores, 1u);
  EXPECT_EQ(addresses(r), (std::vector<std::string>{"127.0.0.1:7001"}));
  EXPECT_EQ(r.server.endpoint.max_message, 77u);
  EXPECT_EQ(r.server.endpoint.max_conns_per_ip, 3u);
  EXPECT_EQ(r.server.endpoint.allowed_origins.size(), 1u);
  ASSERT_EQ(r.server.endpoint.pages.size(), 1u);  // the application's, not the file's
  EXPECT_TRUE(
      restart_keys(parse("plain = true\ncores = 1\nlisten = \"127.0.0.1:7001\"\nmax-message = 5\n"),
                   running)
          .empty());
}

TEST_F(ConfigTest, ReloadNamesRouteAndAuthSwitches) {
  Flags running = parse("plain = true\nroute = \"/a=tcp://127.0.0.1:1\"\n");
  Flags next = parse(
      "plain = true\nroute = \"/a=tcp://127.0.0.1:2\"\nacl = \"x.toml\"\n"
      "[auth]\nleeway = 9\n");
  EXPECT_EQ(restart_keys(next, running),
            (std::vector<std::string>{"route/backend", "auth/acl (on or off)"}));
  // Auth switched on needs a restart: the running (off) options stay, whole.
  EXPECT_EQ(reloadable(running, next).auth.verify.leeway_s, running.auth.verify.leeway_s);
  EXPECT_TRUE(reloadable(running, next).auth.acl_file.empty());
}

// The bridge opens its backend sockets with ZeroMQ's largest message set from the start's
// max-message. Raised above it by a reload, the engine would take a client message the
// backend's answer or publication of cannot carry: ZeroMQ disconnects a peer that sends a
// message over the limit, so one client could keep the backend link flapping (and every
// client of its route closed as an outage). Lowering it is safe and applies.
TEST_F(ConfigTest, WithBackendsMaxMessageReloadsDownNeverAboveTheStart) {
  Flags started = parse("plain = true\nmax-message = 1000\n");
  Flags running = started;
  running.bridge.max_message = 1000;  // as main() completes it for the backend sockets
  Flags above = parse("plain = true\nmax-message = 5000\n");
  EXPECT_EQ(reloadable(running, above).server.endpoint.max_message, 1000u);
  EXPECT_EQ(restart_keys(above, started), (std::vector<std::string>{"max-message"}));
  Flags below = parse("plain = true\nmax-message = 500\n");
  EXPECT_EQ(reloadable(running, below).server.endpoint.max_message, 500u);
  EXPECT_TRUE(restart_keys(below, started).empty());
  // Back up to the start's value after a lowering: fine, the sockets take it.
  Flags lowered = reloadable(running, below);
  EXPECT_EQ(
      reloadable(lowered, parse("plain = true\nmax-message = 1000\n")).server.endpoint.max_message,
      1000u);
  // The echo application has no backends: any value reloads.
  Flags echo = parse("plain = true\napp = \"echo\"\nmax-message = 1000\n");
  EXPECT_EQ(reloadable(echo, parse("plain = true\napp = \"echo\"\nmax-message = 5000\n"))
                .server.endpoint.max_message,
            5000u);
}

TEST(ExampleConfig, EveryKeyIsAFlagAndEveryValueParses) {
  // The shipped example, as it is: its key names and values through the same reader (the
  // files it names are loaded by the integration test, under --check-config).
  Flags f = parse_flags(std::vector<std::string>{"--config", WSEDGE_EXAMPLE_CONFIG});
  EXPECT_FALSE(f.server.listen.empty());
}

}  // namespace
}  // namespace wsedge::app
