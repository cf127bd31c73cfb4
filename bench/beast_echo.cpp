// beast_echo: the Boost.Beast baseline. Idiomatic asynchronous echo server, one io_context
// thread, as Beast's own examples write it; over TLS (asio::ssl) with --tls-cert/--tls-key.
//   beast_echo --listen HOST:PORT [--tls-cert FILE --tls-key FILE] [--deflate] [--broadcast]
// --deflate: Beast's permessage_deflate with server_enable and compLevel 6 (wsedge's default
// level); window bits, memLevel 4 and context takeover are Beast's defaults, so it grants what
// the client offers (both *_no_context_takeover for wsload --deflate).
// --broadcast: every connection gets a text "ready" once open, and every message received is
// sent to every open connection, each through its own write queue (Beast allows one write in
// flight per stream), as Beast's websocket-chat-multi example does; compressed per connection.
#include "bench/server_args.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <cstdio>
#include <deque>
#include <memory>
#include <string>
#include <type_traits>
#include <unordered_set>

namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;

// One session type for both transports: Stream is beast::tcp_stream or ssl_stream over it.
// Broadcast's shared message: one string, referenced by every session's queue until written.
using Shared = std::shared_ptr<const std::string>;

template <class Stream>
class Session : public std::enable_shared_from_this<Session<Stream>> {
 public:
  template <class... Args>
  explicit Session(const wsedge::bench::ServerArgs& args, tcp::socket&& socket, Args&&... more)
      : args_(args), ws_(std::move(socket), std::forward<Args>(more)...) {}

  ~Session() { open_.erase(this); }

  void run() {
    ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
    if (args_.deflate) {
      websocket::permessage_deflate pmd;
      pmd.server_enable = true;
      pmd.compLevel = 6;
      ws_.set_option(pmd);
    }
    ws_.read_message_max(64 << 20);
    if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
      ws_.async_accept(beast::bind_front_handler(&Session::on_accept, this->shared_from_this()));
    } else {
      ws_.next_layer().async_handshake(
          net::ssl::stream_base::server,
          beast::bind_front_handler(&Session::on_tls, this->shared_from_this()));
    }
  }

 private:
  void on_tls(beast::error_code ec) {
    if (!ec)
      ws_.async_accept(beast::bind_front_handler(&Session::on_accept, this->shared_from_this()));
  }
  void on_accept(beast::error_code ec) {
    if (ec) return;
    if (args_.broadcast) {
      open_.insert(this);
      send(std::make_shared<const std::string>("ready"));
    }
    do_read();
  }
  void do_read() {
    ws_.async_read(buffer_, beast::bind_front_handler(&Session::on_read, this->shared_from_this()));
  }
  void on_read(beast::error_code ec, std::size_t) {
    if (ec) return;
    if (args_.broadcast) {
      // The sessions share the io_context's one thread, so calling another session's send
      // directly is safe; the chat example's post per delivery would only add cost here.
      Shared msg = std::make_shared<const std::string>(beast::buffers_to_string(buffer_.data()));
      buffer_.consume(buffer_.size());
      for (Session* s : open_) s->send(msg);
      return do_read();
    }
    ws_.text(ws_.got_text());
    ws_.async_write(buffer_.data(),
                    beast::bind_front_handler(&Session::on_write, this->shared_from_this()));
  }
  void on_write(beast::error_code ec, std::size_t) {
    if (ec) return;
    buffer_.consume(buffer_.size());
    do_read();
  }

  // Broadcast: queued while a write is in flight; every message is text (wsload's triggers).
  void send(Shared msg) {
    queue_.push_back(std::move(msg));
    if (queue_.size() == 1) write_front();
  }
  void write_front() {
    ws_.text(true);
    ws_.async_write(net::buffer(*queue_.front()),
                    beast::bind_front_handler(&Session::on_sent, this->shared_from_this()));
  }
  void on_sent(beast::error_code ec, std::size_t) {
    if (ec) return;
    queue_.pop_front();
    if (!queue_.empty()) write_front();
  }

  // Broadcast's open sessions of this stream type: one thread, so a plain static set.
  static inline std::unordered_set<Session*> open_;
  const wsedge::bench::ServerArgs& args_;
  websocket::stream<Stream> ws_;
  beast::flat_buffer buffer_;
  std::deque<Shared> queue_;
};

class Listener : public std::enable_shared_from_this<Listener> {
 public:
  Listener(const wsedge::bench::ServerArgs& args, net::io_context& ioc, tcp::endpoint ep,
           net::ssl::context* tls)
      : args_(args), ioc_(ioc), acceptor_(ioc), tls_(tls) {
    acceptor_.open(ep.protocol());
    acceptor_.set_option(net::socket_base::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen(4096);
  }
  void run() { do_accept(); }

 private:
  void do_accept() {
    acceptor_.async_accept(net::make_strand(ioc_),
                           beast::bind_front_handler(&Listener::on_accept, shared_from_this()));
  }
  void on_accept(beast::error_code ec, tcp::socket socket) {
    if (!ec) {
      socket.set_option(tcp::no_delay(true));
      if (tls_)
        std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(args_, std::move(socket),
                                                                        *tls_)
            ->run();
      else
        std::make_shared<Session<beast::tcp_stream>>(args_, std::move(socket))->run();
    }
    do_accept();
  }
  const wsedge::bench::ServerArgs& args_;
  net::io_context& ioc_;
  tcp::acceptor acceptor_;
  net::ssl::context* tls_;
};

int main(int argc, char** argv) {
  auto args = wsedge::bench::parse_server_args(argc, argv, "beast_echo");
  const std::string &cert = args.cert, &key = args.key;
  net::io_context ioc{1};
  net::ssl::context tls{net::ssl::context::tls_server};
  if (!cert.empty()) {
    tls.set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                    net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 |
                    net::ssl::context::no_tlsv1_1);
    tls.use_certificate_chain_file(cert);
    tls.use_private_key_file(key, net::ssl::context::pem);
  }
  std::make_shared<Listener>(args, ioc, tcp::endpoint{net::ip::make_address(args.host), args.port},
                             cert.empty() ? nullptr : &tls)
      ->run();
  ioc.run();
}
