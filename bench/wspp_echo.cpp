// wspp_echo: the websocketpp baseline. Echo server on the asio config (asio_tls with
// --tls-cert/--tls-key), one thread, logging off.
//   wspp_echo --listen HOST:PORT [--tls-cert FILE --tls-key FILE] [--deflate] [--broadcast]
// --deflate: the same config with websocketpp's permessage_deflate::enabled extension, which
// grants what the client offers (both *_no_context_takeover for wsload --deflate); its zlib
// level (Z_DEFAULT_COMPRESSION = 6), memLevel 4 and 8 KiB buffers are fixed in websocketpp.
// --broadcast: every connection gets a text "ready" once open, and every message received is
// sent to every open connection, as websocketpp's broadcast_server example does (one
// send per connection of the received message; compressed per connection).
#include "bench/server_args.hpp"

#include <cstdio>
#include <memory>
#include <set>
#include <string>
#include <type_traits>
#include <websocketpp/config/asio.hpp>
#include <websocketpp/extensions/permessage_deflate/enabled.hpp>
#include <websocketpp/server.hpp>

// A config with permessage-deflate: the extension is a policy type of the config.
template <class Base>
struct Deflating : Base {
  using type = Deflating;
  using permessage_deflate_type = websocketpp::extensions::permessage_deflate::enabled<
      typename Base::permessage_deflate_config>;
};

template <class Server>
void serve(Server& s, const wsedge::bench::ServerArgs& args) {
  s.clear_access_channels(websocketpp::log::alevel::all);
  s.clear_error_channels(websocketpp::log::elevel::all);
  s.init_asio();
  s.set_reuse_addr(true);
  s.set_listen_backlog(4096);
  s.set_max_message_size(64 << 20);
  s.set_tcp_post_init_handler([&s](websocketpp::connection_hdl h) {
    s.get_con_from_hdl(h)->get_socket().lowest_layer().set_option(
        boost::asio::ip::tcp::no_delay(true));
  });
  std::set<websocketpp::connection_hdl, std::owner_less<websocketpp::connection_hdl>> open;
  if (args.broadcast) {
    s.set_open_handler([&s, &open](websocketpp::connection_hdl h) {
      open.insert(h);
      websocketpp::lib::error_code ec;
      s.send(h, "ready", websocketpp::frame::opcode::text, ec);
    });
    s.set_close_handler([&open](websocketpp::connection_hdl h) { open.erase(h); });
    s.set_message_handler(
        [&s, &open](websocketpp::connection_hdl, typename Server::message_ptr msg) {
          // A received message carries the RSV1 it came with; sent on, it is compressed whatever
          // came, as send(payload) does.
          msg->set_compressed(true);
          websocketpp::lib::error_code ec;
          for (const auto& h : open) s.send(h, msg, ec);
        });
  } else {
    s.set_message_handler([&s](websocketpp::connection_hdl h, typename Server::message_ptr msg) {
      websocketpp::lib::error_code ec;
      s.send(h, msg->get_payload(), msg->get_opcode(), ec);
    });
  }
  s.listen(boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address(args.host), args.port));
  s.start_accept();
  s.run();
}

template <class Config>
void run(const wsedge::bench::ServerArgs& args) {
  websocketpp::server<Config> s;
  if constexpr (std::is_base_of_v<websocketpp::config::asio_tls, Config>) {
    s.set_tls_init_handler([&args](websocketpp::connection_hdl) {
      auto ctx = std::make_shared<boost::asio::ssl::context>(boost::asio::ssl::context::tls_server);
      ctx->set_options(boost::asio::ssl::context::default_workarounds |
                       boost::asio::ssl::context::no_tlsv1 | boost::asio::ssl::context::no_tlsv1_1);
      ctx->use_certificate_chain_file(args.cert);
      ctx->use_private_key_file(args.key, boost::asio::ssl::context::pem);
      return ctx;
    });
  }
  serve(s, args);
}

int main(int argc, char** argv) {
  using namespace websocketpp::config;
  auto args = wsedge::bench::parse_server_args(argc, argv, "wspp_echo");
  if (args.cert.empty())
    args.deflate ? run<Deflating<asio>>(args) : run<asio>(args);
  else
    args.deflate ? run<Deflating<asio_tls>>(args) : run<asio_tls>(args);
}
