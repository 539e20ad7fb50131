/** Wire-format constants: the header and every tag byte, in one place. */

/** `MPK` + format version + flags. */
export const MAGIC = [0x4d, 0x50, 0x4b] as const;
/**
 * 2: binary data as a buffer table (views keep their buffer, offset and sharing; extra properties on views).
 * 3: shapes (plain objects with a key list seen before name it), and every well-formed string up to 63 UTF-8 bytes is a FIXSTR.
 * 4: plain Maps, Sets and Dates as T_MAP/T_SET/T_DATE instead of reducer records.
 */
export const FORMAT_VERSION = 4;
export const HEADER_SIZE = 5;
/** Header flag: the payload carries code (functions, classes, module references or shipped files). */
export const HEADER_HAS_CODE = 0x01;

export const T_UNDEFINED = 0x00;
export const T_NULL = 0x01;
export const T_FALSE = 0x02;
export const T_TRUE = 0x03;
export const T_INT = 0x04; // zigzag varint
export const T_FLOAT64 = 0x05;
export const T_BIGINT_POS = 0x06; // varint byte length + little-endian magnitude
export const T_BIGINT_NEG = 0x07;
export const T_STR8 = 0x08; // varint byte length + UTF-8 (well-formed strings only)
export const T_STR16 = 0x09; // varint code-unit count + UTF-16LE (strings with lone surrogates)
export const T_STRREF = 0x0a; // varint index into the payload's string table (keys and names)
export const T_SYMBOL_REG = 0x0b; // Symbol.for(key): key string follows
export const T_SYMBOL_WK = 0x0c; // well-known symbol: name string follows
export const T_SYMBOL_UNIQUE = 0x0d; // memoized; description string or undefined follows
export const T_REF = 0x0e; // varint memo id
export const T_OBJECT_SIMPLE = 0x10; // plain extensible object, data properties with default attributes
export const T_OBJECT = 0x11; // object flags + [proto] + property list
export const T_ARRAY_DENSE = 0x12; // plain array without holes or extra properties
export const T_ARRAY = 0x13; // length + object flags + [proto] + (index, value) pairs + property list
export const T_SHAPE_DEF = 0x14; // simple object that defines shape #k (k = shapes so far): varint n, n keys, n values
export const T_SHAPE = 0x15; // simple object of shape #k: varint k, then its n values
export const T_BYTES = 0x16; // raw bytes (not memoized), decoded as an owning Uint8Array
export const T_REDUCE = 0x17; // reduce flags + reducer name | restore function + args + [proto] + [state] + [props]
export const T_BUFFER = 0x18; // memoized ArrayBuffer/SharedArrayBuffer: varint slot in the buffer table + object tail
export const T_VIEW = 0x19; // memoized TypedArray/DataView/Buffer: varint index into the table's views + object tail
/**
 * The buffer table, only as the first byte of a value stream (the body, or a section's data):
 * varint buffer count { buffer flags, varint byteLength, [varint maxByteLength], bytes }*
 * varint view count { view kind, view flags, varint slot, varint byteOffset, varint length }*
 */
export const T_TABLE = 0x1a;
export const T_MAP = 0x1b; // memoized plain Map: varint entry count, then key, value for each entry
export const T_SET = 0x1c; // memoized plain Set: varint item count, then the items
export const T_DATE = 0x1d; // memoized plain Date: its time value as float64

export const T_FIXSTR = 0x40; // 0x40..0x7f: UTF-8 string of 0..63 bytes
export const FIXSTR_MAX = 63;
export const T_FIXINT = 0x80; // 0x80..0xff: integer 0..127
export const FIXINT_MAX = 127;

/** Object flags (T_OBJECT, T_ARRAY, and T_REDUCE with props). */
export const O_NON_EXTENSIBLE = 0x01;
export const O_ATTRS = 0x02; // each property has an attribute byte
export const O_PROTO = 0x04; // a prototype value follows (a constructor whose .prototype to use, or an object)
export const O_PROTO_IS_CTOR = 0x08;
export const O_NULL_PROTO = 0x10;
export const O_LENGTH_READONLY = 0x20; // arrays: `length` is not writable

/** Property attribute byte. */
export const A_WRITABLE = 0x01;
export const A_ENUMERABLE = 0x02;
export const A_CONFIGURABLE = 0x04;
export const A_ACCESSOR = 0x08;
export const A_DEFAULT = A_WRITABLE | A_ENUMERABLE | A_CONFIGURABLE;

/** Buffer flags in the table. */
export const B_SHARED = 0x01; // a SharedArrayBuffer
export const B_RESIZABLE = 0x02; // resizable (growable, when shared): maxByteLength follows
export const B_OUT_OF_BAND = 0x04; // not in the payload: its length, then its index in the loader's `outOfBand` list
/** View kinds: the TypedArray kinds in this order, then DataView and Buffer (a Uint8Array with Buffer.prototype). */
export const VIEW_KINDS = [
  'Int8Array', 'Uint8Array', 'Uint8ClampedArray', 'Int16Array', 'Uint16Array', 'Int32Array', 'Uint32Array',
  'Float32Array', 'Float64Array', 'BigInt64Array', 'BigUint64Array', 'DataView', 'Buffer',
] as const;
export const V_DATAVIEW = 11;
export const V_BUFFER = 12;
/** View flags in the table. */
export const VF_TRACKING = 0x01; // length-tracking view of a resizable buffer: no fixed length

/** Reduce flags. */
export const R_BY_NAME = 0x01; // a registered reducer's name follows; else a restore function value
export const R_STATE = 0x02;
export const R_PROPS = 0x04; // object flags + [proto] + property list follow the state
