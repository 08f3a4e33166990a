// A small, strict XML reader for the request bodies S3 clients send (CompleteMultipartUpload, Delete,
// CreateBucketConfiguration): elements, text, the five predefined entities and numeric character references.
// Namespace prefixes are dropped from names; attributes are checked for form and skipped; DOCTYPE and
// processing instructions other than the XML declaration are refused (no entity expansion, so no billion
// laughs). Bounded depth and element count; never throws, never reads past the end.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace cumulo::objstore {

struct XmlElement {
  std::string name;  // local name, without a namespace prefix
  std::string text;  // character data directly inside, entities decoded
  std::vector<XmlElement> children;

  const XmlElement* child(std::string_view name) const;      // first child with this name, nullptr when none
  std::string_view child_text(std::string_view name) const;  // its text, empty when none
};

struct XmlLimits {
  size_t max_depth = 16;
  size_t max_elements = 20000;  // DeleteObjects carries up to 1000 <Object>s of 2-3 elements each
};

struct XmlError {
  size_t pos = 0;
  const char* reason = "";
};

// Parses a whole document into root. False on malformed input, with err saying where and why.
[[nodiscard]] bool parse_xml(std::string_view in, XmlElement& root, XmlError& err, XmlLimits limits = {});

}  // namespace cumulo::objstore
