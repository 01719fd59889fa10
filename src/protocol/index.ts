export * from './constants.js';
export type * from './packets.js';
export * from './errors.js';
export { Decoder, type DecoderOptions } from './decoder.js';
export { encode } from './encoder.js';
