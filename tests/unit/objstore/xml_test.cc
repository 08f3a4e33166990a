#include "objstore/wire/xml.h"

#include <gtest/gtest.h>

#include "objstore/wire/s3_errors.h"

namespace cumulo::objstore {
namespace {

TEST(Xml, CompleteMultipartUpload) {
  XmlElement root;
  XmlError err;
  ASSERT_TRUE(parse_xml(R"(<?xml version="1.0" encoding="UTF-8"?>
<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Part><PartNumber>1</PartNumber><ETag>&quot;a54357aff0632cce46d942af68356b38&quot;</ETag></Part>
  <!-- a comment -->
  <Part><ETag>"0c78aef83f66abc1fa1e8477f296d394"</ETag><PartNumber>2</PartNumber></Part>
</CompleteMultipartUpload>)",
                        root, err))
      << err.reason << " at " << err.pos;
  EXPECT_EQ(root.name, "CompleteMultipartUpload");
  ASSERT_EQ(root.children.size(), 2u);
  EXPECT_EQ(root.children[0].child_text("PartNumber"), "1");
  EXPECT_EQ(root.children[0].child_text("ETag"), "\"a54357aff0632cce46d942af68356b38\"");
  EXPECT_EQ(root.children[1].child_text("PartNumber"), "2");
}

TEST(Xml, EntitiesPrefixesAndCdata) {
  XmlElement root;
  XmlError err;
  ASSERT_TRUE(
      parse_xml("<s3:Delete xmlns:s3='x'><Object><Key>a&amp;b&#x263A;&#65;<![CDATA[<c>]]></Key></Object>"
                "<Quiet>true</Quiet></s3:Delete>",
                root, err))
      << err.reason;
  EXPECT_EQ(root.name, "Delete");
  EXPECT_EQ(root.children[0].child_text("Key"),
            "a&b\xE2\x98\xBA"
            "A<c>");
  EXPECT_EQ(root.child_text("Quiet"), "true");
}

TEST(Xml, RefusesMalformed) {
  XmlElement root;
  XmlError err;
  for (std::string_view bad :
       {"", "<a>", "<a></b>", "<a><b></a></b>", "text", "<a>&unknown;</a>", "<a>&#0;</a>",
        "<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>", "<a></a><b></b>", "<a x=1></a>", "<a>&#x110000;</a>",
        "<a><?pi?></a>", "<a>]]></a>", "<a", "<53:/>", "<:a/>"}) {
    EXPECT_FALSE(parse_xml(bad, root, err)) << bad;
  }
}

TEST(Xml, Limits) {
  XmlElement root;
  XmlError err;
  std::string deep;
  for (int i = 0; i < 40; ++i) deep += "<a>";
  for (int i = 0; i < 40; ++i) deep += "</a>";
  EXPECT_FALSE(parse_xml(deep, root, err));
  std::string many = "<a>";
  for (int i = 0; i < 30000; ++i) many += "<b/>";
  many += "</a>";
  EXPECT_FALSE(parse_xml(many, root, err));
}

TEST(S3Errors, TableAndDocument) {
  EXPECT_EQ(s3_error_info(S3Error::kNoSuchKey).code, "NoSuchKey");
  EXPECT_EQ(s3_error_info(S3Error::kNoSuchKey).http_status, 404);
  EXPECT_EQ(s3_error_info(S3Error::kInvalidRange).http_status, 416);
  EXPECT_EQ(s3_error_info(S3Error::kSignatureDoesNotMatch).http_status, 403);
  EXPECT_EQ(s3_error_info(S3Error::kStorageFull).http_status, 507);
  for (int i = 1; i < static_cast<int>(S3Error::kCount); ++i)
    EXPECT_FALSE(s3_error_info(static_cast<S3Error>(i)).code.empty()) << i;
  std::string doc = s3_error_xml(S3Error::kNoSuchBucket, "/a<b", "ID1");
  EXPECT_NE(doc.find("<Code>NoSuchBucket</Code>"), std::string::npos);
  EXPECT_NE(doc.find("<Resource>/a&lt;b</Resource>"), std::string::npos);
}

}  // namespace
}  // namespace cumulo::objstore
