#include "guestbook.h"

#include <mysql.h>

#include <cctype>
#include <memory>
#include <optional>
#include <vector>

namespace webapp {

namespace {

using cumulo::http::Response;

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// application/x-www-form-urlencoded (HTML 4.01 section 17.13.4).
std::string form_value(const std::string& body, const std::string& name) {
  size_t pos = 0;
  while (pos <= body.size()) {
    size_t amp = body.find('&', pos);
    if (amp == std::string::npos) amp = body.size();
    std::string pair = body.substr(pos, amp - pos);
    size_t eq = pair.find('=');
    if (eq != std::string::npos && pair.substr(0, eq) == name) {
      std::string raw = pair.substr(eq + 1), out;
      for (size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] == '+') {
          out += ' ';
        } else if (raw[i] == '%' && i + 2 < raw.size() && isxdigit(static_cast<unsigned char>(raw[i + 1])) &&
                   isxdigit(static_cast<unsigned char>(raw[i + 2]))) {
          out += static_cast<char>(std::stoi(raw.substr(i + 1, 2), nullptr, 16));
          i += 2;
        } else {
          out += raw[i];
        }
      }
      return out;
    }
    pos = amp + 1;
  }
  return "";
}

struct Closer {
  void operator()(MYSQL* m) const { mysql_close(m); }
};
using Mysql = std::unique_ptr<MYSQL, Closer>;

// Connects to HOST:PORT; on failure returns null and the client library's message.
Mysql connect(const std::string& address, const GuestbookOptions& o, std::string* error) {
  size_t colon = address.rfind(':');
  std::string host = address.substr(0, colon);
  unsigned port = static_cast<unsigned>(std::atoi(address.substr(colon + 1).c_str()));
  Mysql m(mysql_init(nullptr));
  unsigned timeout = 5, proto = MYSQL_PROTOCOL_TCP;
  mysql_optionsv(m.get(), MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
  mysql_optionsv(m.get(), MYSQL_OPT_READ_TIMEOUT, &timeout);
  mysql_optionsv(m.get(), MYSQL_OPT_WRITE_TIMEOUT, &timeout);
  mysql_optionsv(m.get(), MYSQL_OPT_PROTOCOL, &proto);
  if (!mysql_real_connect(m.get(), host.c_str(), o.user.c_str(), o.password.c_str(), o.database.c_str(), port,
                          nullptr, 0)) {
    *error = mysql_error(m.get());
    return nullptr;
  }
  return m;
}

std::optional<std::vector<std::vector<std::string>>> rows(MYSQL* m, const std::string& sql,
                                                          std::string* error) {
  if (mysql_real_query(m, sql.data(), sql.size()) != 0) {
    *error = mysql_error(m);
    return std::nullopt;
  }
  std::vector<std::vector<std::string>> out;
  MYSQL_RES* res = mysql_store_result(m);
  if (!res) return out;
  unsigned n = mysql_num_fields(res);
  while (MYSQL_ROW row = mysql_fetch_row(res)) {
    std::vector<std::string> r;
    for (unsigned i = 0; i < n; ++i) r.emplace_back(row[i] ? row[i] : "");
    out.push_back(std::move(r));
  }
  mysql_free_result(res);
  return out;
}

constexpr const char* kCreate =
    "CREATE TABLE IF NOT EXISTS guestbook (id BIGINT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(64) NOT NULL, "
    "message VARCHAR(500) NOT NULL, served_by INT NOT NULL, created_at TIMESTAMP NOT NULL DEFAULT "
    "CURRENT_TIMESTAMP) ENGINE=InnoDB";

}  // namespace

Guestbook::Guestbook(cumulo::core::EventLoop& loop, GuestbookOptions options)
    : loop_(loop), options_(std::move(options)), thread_([this] { run(); }) {}

Guestbook::~Guestbook() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Guestbook::run() {
  mysql_thread_init();
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) break;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    job();
  }
  mysql_thread_end();
}

void Guestbook::handle(cumulo::http::Request& req, cumulo::http::Responder respond) {
  if (req.method != "GET" && req.method != "POST") {
    respond(Response::text(405, "method not allowed; use GET or POST\n"));
    return;
  }
  std::string body = req.body;
  bool is_post = req.method == "POST";
  std::lock_guard lock(mu_);
  jobs_.push_back([this, respond, body, is_post] {
    Response r = is_post ? post(body) : page("");
    loop_.post([respond, r]() mutable { respond(std::move(r)); });
  });
  cv_.notify_one();
}

Response Guestbook::post(const std::string& body) {
  std::string name = form_value(body, "name"), message = form_value(body, "message");
  if (name.empty() || message.empty() || name.size() > 64 || message.size() > 500) {
    return page("Both a name (up to 64 bytes) and a message (up to 500 bytes) are needed.");
  }
  std::string error;
  Mysql m = connect(options_.writer, options_, &error);
  if (!m) return page("The writer endpoint " + options_.writer + " did not take the entry: " + error);
  std::vector<char> en(name.size() * 2 + 1), em(message.size() * 2 + 1);
  mysql_real_escape_string(m.get(), en.data(), name.data(), name.size());
  mysql_real_escape_string(m.get(), em.data(), message.data(), message.size());
  std::string sql = std::string("INSERT INTO guestbook (name, message, served_by) VALUES ('") + en.data() +
                    "', '" + em.data() + "', @@port)";
  if (mysql_query(m.get(), kCreate) != 0 || mysql_query(m.get(), sql.c_str()) != 0) {
    return page(std::string("The entry was not stored: ") + mysql_error(m.get()));
  }
  Response r = Response::text(303, "stored\n");
  r.headers.emplace_back("Location", "/guestbook");
  return r;
}

Response Guestbook::page(const std::string& notice) {
  std::string html =
      "<!doctype html><html><head><meta charset=\"utf-8\"><title>Guestbook</title></head><body>"
      "<h1>Guestbook</h1><form method=\"post\" action=\"/guestbook\">"
      "<input name=\"name\" placeholder=\"name\" maxlength=\"64\"> "
      "<input name=\"message\" placeholder=\"message\" maxlength=\"500\" size=\"50\"> "
      "<button>Sign</button></form>";
  if (!notice.empty()) html += "<p><strong>" + html_escape(notice) + "</strong></p>";
  std::string error;
  Mysql m = connect(options_.reader, options_, &error);
  if (!m) {
    html += "<p>The reader endpoint " + html_escape(options_.reader) +
            " is unreachable: " + html_escape(error) + "</p>";
  } else {
    auto port = rows(m.get(), "SELECT @@port", &error);
    auto list = rows(
        m.get(), "SELECT id, name, message, served_by, created_at FROM guestbook ORDER BY id DESC LIMIT 50",
        &error);
    html += "<p>Read through the reader endpoint " + html_escape(options_.reader) +
            ", served by the server on port " + (port && !port->empty() ? html_escape((*port)[0][0]) : "?") +
            "; entries are written through the "
            "writer endpoint " +
            html_escape(options_.writer) + ".</p>";
    if (!list && mysql_errno(m.get()) == 1146) {
      html += "<p>No entries yet.</p>";
    } else if (!list) {
      html += "<p>Cannot read the entries: " + html_escape(error) + "</p>";
    } else {
      html +=
          "<table border=\"1\" cellpadding=\"4\"><tr><th>#</th><th>name</th><th>message</th>"
          "<th>written on port</th><th>at</th></tr>";
      for (const auto& row : *list) {
        html += "<tr>";
        for (const auto& v : row) html += "<td>" + html_escape(v) + "</td>";
        html += "</tr>";
      }
      html += "</table>";
    }
  }
  html += "</body></html>\n";
  return Response::text(200, html, "text/html; charset=utf-8");
}

}  // namespace webapp
