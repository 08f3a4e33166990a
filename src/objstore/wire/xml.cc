#include "objstore/wire/xml.h"

#include "core/text.h"

namespace cumulo::objstore {

const XmlElement* XmlElement::child(std::string_view n) const {
  for (const auto& c : children)
    if (c.name == n) return &c;
  return nullptr;
}

std::string_view XmlElement::child_text(std::string_view n) const {
  const XmlElement* c = child(n);
  return c ? std::string_view(c->text) : std::string_view{};
}

namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}
bool is_name_char(char c) {
  unsigned char u = static_cast<unsigned char>(c);
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
         c == '.' || c == ':' || u >= 0x80;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

class Reader {
 public:
  Reader(std::string_view in, XmlError& err, XmlLimits limits) : in_(in), err_(err), limits_(limits) {}

  bool document(XmlElement& root) {
    skip_space();
    if (starts("<?xml")) {
      size_t end = in_.find("?>", pos_);
      if (end == std::string_view::npos) return fail("unterminated XML declaration");
      pos_ = end + 2;
    }
    if (!misc()) return false;
    if (pos_ >= in_.size() || in_[pos_] != '<') return fail("expected the root element");
    if (!element(root, 1)) return false;
    if (!misc()) return false;
    if (pos_ != in_.size()) return fail("content after the root element");
    return true;
  }

 private:
  bool fail(const char* why) {
    err_.pos = pos_;
    err_.reason = why;
    return false;
  }
  bool starts(std::string_view s) const { return in_.substr(pos_, s.size()) == s; }
  void skip_space() {
    while (pos_ < in_.size() && is_space(in_[pos_])) ++pos_;
  }
  // Whitespace and comments between top-level constructs.
  bool misc() {
    for (;;) {
      skip_space();
      if (starts("<!--")) {
        if (!comment()) return false;
        continue;
      }
      if (starts("<!") || starts("<?")) return fail("DOCTYPE and processing instructions are not accepted");
      return true;
    }
  }
  bool comment() {
    size_t end = in_.find("-->", pos_ + 4);
    if (end == std::string_view::npos) return fail("unterminated comment");
    pos_ = end + 3;
    return true;
  }
  bool name(std::string_view& out) {
    size_t start = pos_;
    while (pos_ < in_.size() && is_name_char(in_[pos_])) ++pos_;
    if (pos_ == start) return fail("expected a name");
    out = in_.substr(start, pos_ - start);
    return true;
  }
  static std::string local(std::string_view qname) {
    size_t colon = qname.rfind(':');
    return std::string(colon == std::string_view::npos ? qname : qname.substr(colon + 1));
  }
  bool attributes(bool& self_closing) {
    for (;;) {
      bool had_space = pos_ < in_.size() && is_space(in_[pos_]);
      skip_space();
      if (pos_ >= in_.size()) return fail("unterminated start tag");
      if (in_[pos_] == '>') {
        ++pos_;
        self_closing = false;
        return true;
      }
      if (starts("/>")) {
        pos_ += 2;
        self_closing = true;
        return true;
      }
      if (!had_space) return fail("expected whitespace before an attribute");
      std::string_view attr;
      if (!name(attr)) return false;
      skip_space();
      if (pos_ >= in_.size() || in_[pos_] != '=') return fail("expected '=' after an attribute name");
      ++pos_;
      skip_space();
      if (pos_ >= in_.size() || (in_[pos_] != '"' && in_[pos_] != '\''))
        return fail("expected a quoted value");
      char quote = in_[pos_++];
      size_t end = in_.find(quote, pos_);
      if (end == std::string_view::npos) return fail("unterminated attribute value");
      if (in_.substr(pos_, end - pos_).find('<') != std::string_view::npos)
        return fail("'<' in an attribute");
      pos_ = end + 1;
    }
  }
  bool reference(std::string& out) {
    size_t semi = in_.find(';', pos_);
    if (semi == std::string_view::npos || semi - pos_ > 12) return fail("bad entity reference");
    std::string_view ref = in_.substr(pos_ + 1, semi - pos_ - 1);
    if (ref == "lt")
      out += '<';
    else if (ref == "gt")
      out += '>';
    else if (ref == "amp")
      out += '&';
    else if (ref == "quot")
      out += '"';
    else if (ref == "apos")
      out += '\'';
    else if (ref.size() >= 2 && ref[0] == '#') {
      uint32_t cp = 0;
      bool hex = ref[1] == 'x';
      std::string_view digits = ref.substr(hex ? 2 : 1);
      if (digits.empty()) return fail("bad character reference");
      for (char c : digits) {
        const int d = hex ? core::hex_digit_value(c) : core::is_digit(c) ? c - '0' : -1;
        if (d < 0) return fail("bad character reference");
        cp = cp * (hex ? 16 : 10) + static_cast<uint32_t>(d);
        if (cp > 0x10FFFF) return fail("character reference out of range");
      }
      if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF)) return fail("character reference not allowed");
      append_utf8(out, cp);
    } else {
      return fail("unknown entity");
    }
    pos_ = semi + 1;
    return true;
  }
  bool element(XmlElement& el, size_t depth) {
    if (depth > limits_.max_depth) return fail("elements nested too deeply");
    if (++elements_ > limits_.max_elements) return fail("too many elements");
    ++pos_;  // '<'
    std::string_view qname;
    if (!name(qname)) return false;
    el.name = local(qname);
    if (el.name.empty() || qname.front() == ':') return fail("bad element name");
    bool self_closing = false;
    if (!attributes(self_closing)) return false;
    if (self_closing) return true;
    for (;;) {
      if (pos_ >= in_.size()) return fail("unterminated element");
      char c = in_[pos_];
      if (c == '<') {
        if (starts("</")) {
          pos_ += 2;
          std::string_view close;
          if (!name(close)) return false;
          if (close != qname) return fail("end tag does not match the start tag");
          skip_space();
          if (pos_ >= in_.size() || in_[pos_] != '>') return fail("expected '>'");
          ++pos_;
          return true;
        }
        if (starts("<!--")) {
          if (!comment()) return false;
          continue;
        }
        if (starts("<![CDATA[")) {
          size_t end = in_.find("]]>", pos_ + 9);
          if (end == std::string_view::npos) return fail("unterminated CDATA section");
          el.text.append(in_.substr(pos_ + 9, end - pos_ - 9));
          pos_ = end + 3;
          continue;
        }
        if (starts("<!") || starts("<?")) return fail("DOCTYPE and processing instructions are not accepted");
        el.children.emplace_back();
        if (!element(el.children.back(), depth + 1)) return false;
        continue;
      }
      if (c == '&') {
        if (!reference(el.text)) return false;
        continue;
      }
      if (c == ']' && starts("]]>")) return fail("']]>' in text");
      el.text += c;
      ++pos_;
    }
  }

  std::string_view in_;
  size_t pos_ = 0;
  XmlError& err_;
  XmlLimits limits_;
  size_t elements_ = 0;
};

}  // namespace

bool parse_xml(std::string_view in, XmlElement& root, XmlError& err, XmlLimits limits) {
  root = XmlElement{};
  err = XmlError{};
  Reader r(in, err, limits);
  return r.document(root);
}

}  // namespace cumulo::objstore
