// The pickle opcodes the restricted unpickler reads and the state-dict writer emits, with
// CPython's Lib/pickle.py names. Internal to formats/pickle*.cpp.
#pragma once
#include <cstdint>

namespace wan::pickle::opcode {

enum : uint8_t {
  MARK = '(', STOP = '.', POP = '0', POP_MARK = '1', DUP = '2', BINPERSID = 'Q', REDUCE = 'R',
  BINSTRING = 'T', SHORT_BINSTRING = 'U', BINUNICODE = 'X', APPEND = 'a', BUILD = 'b', GLOBAL = 'c',
  DICT = 'd', EMPTY_DICT = '}', APPENDS = 'e', BINGET = 'h', LONG_BINGET = 'j', LIST = 'l', EMPTY_LIST = ']',
  BINPUT = 'q', LONG_BINPUT = 'r', SETITEM = 's', TUPLE = 't', EMPTY_TUPLE = ')', SETITEMS = 'u',
  BINFLOAT = 'G', BININT = 'J', BININT1 = 'K', BININT2 = 'M', NONE = 'N',
  PROTO = 0x80, NEWOBJ = 0x81, TUPLE1 = 0x85, TUPLE2 = 0x86, TUPLE3 = 0x87, NEWTRUE = 0x88, NEWFALSE = 0x89,
  LONG1 = 0x8a, LONG4 = 0x8b,                                        // protocol 2
  BINBYTES = 'B', SHORT_BINBYTES = 'C',                              // protocol 3
  SHORT_BINUNICODE = 0x8c, BINUNICODE8 = 0x8d, BINBYTES8 = 0x8e, NEWOBJ_EX = 0x92, STACK_GLOBAL = 0x93,
  MEMOIZE = 0x94, FRAME = 0x95,                                      // protocol 4
};

}  // namespace wan::pickle::opcode
