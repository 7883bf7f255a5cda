// read_csv on arbitrary bytes: a table whose shape holds together, or a weft::Error. The first
// byte picks the options (header or not, the delimiter, every column or two named ones, two
// columns of dates or none).
#include "fuzz_support.h"
#include "weft/models/datasets.h"
#include "weft/runtime/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const uint8_t choice = size > 0 ? data[0] : 0;
  const auto path = weft::fuzz::scratch() / "table.csv";
  weft::fuzz::write_file(path, bytes.substr(size > 0 ? 1 : 0));
  weft::CsvOptions options;
  options.header = (choice & 1) == 0;
  options.delimiter = (choice & 2) ? ';' : ',';
  if (choice & 4) options.columns = {"b", "0"};
  if (choice & 8) options.dates = {"a", "1"};
  try {
    const weft::CsvTable table = weft::read_csv(path, options);
    weft::fuzz::require(
        table.values.values.size() == static_cast<size_t>(table.values.rows * table.values.cols),
        "rows * cols values");
    weft::fuzz::require(table.columns.size() == static_cast<size_t>(table.values.cols),
                        "a name per column");
    for (const auto& name : table.columns) {
      weft::fuzz::require(table.column(name).size() == static_cast<size_t>(table.values.rows),
                          "a value per row");
    }
  } catch (const weft::Error&) {
  }
  return 0;
}
