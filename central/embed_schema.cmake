# cmake -DOUT=file.c -DFILES="a.sql;b.sql" -P embed_schema.cmake
# Writes the migrations as a C table: version (from the file name's three
# digits, which must run 1, 2, 3, ... without gaps), name, and the SQL as a
# byte array (so no character in the SQL needs escaping).
set(body "")
set(table "")
set(expect 1)
foreach(f IN LISTS FILES)
  get_filename_component(name ${f} NAME_WE)
  string(SUBSTRING ${name} 0 3 digits)
  math(EXPR version "${digits}")
  if(NOT version EQUAL expect)
    message(FATAL_ERROR "central/schema: ${name}.sql: expected migration ${expect}")
  endif()
  math(EXPR expect "${expect} + 1")
  file(READ ${f} hex HEX)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  string(APPEND body "static const char sql_${version}[] = {${bytes}0x00};\n")
  string(APPEND table "\t{${version}, \"${name}\", sql_${version}},\n")
endforeach()
file(WRITE ${OUT}.tmp "/* Generated from the central/schema migrations by embed_schema.cmake. */\n"
  "#include \"penlink_central.h\"\n\n${body}\n"
  "const struct pc_migration pc_migrations[] = {\n${table}};\n"
  "const int pc_schema_version = (int)(sizeof pc_migrations / sizeof pc_migrations[0]);\n")
file(RENAME ${OUT}.tmp ${OUT})
