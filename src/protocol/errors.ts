/**
 * The codec's only error type. Every malformed or forbidden input ends in an MqttError that
 * carries the MQTT 5.0 reason code to answer with and, where one applies, the normative
 * statement it violates. The connection layer is the one place that maps it to the wire.
 */

export class MqttError extends Error {
  /** Stable machine-readable code, e.g. 'COURIER_MALFORMED_PACKET'. */
  readonly code: string;
  /** MQTT 5.0 reason code (§2.4) the peer should receive. */
  readonly reasonCode: number;
  /** Normative statement violated, e.g. '[MQTT-1.5.4-2]', when one applies. */
  readonly statement: string | undefined;

  constructor(code: string, reasonCode: number, message: string, statement?: string) {
    super(statement ? `${message} ${statement}` : message);
    this.name = 'MqttError';
    this.code = code;
    this.reasonCode = reasonCode;
    this.statement = statement;
  }
}

/** 0x81: the bytes do not follow the packet grammar. */
export class MalformedPacketError extends MqttError {
  constructor(message: string, statement?: string) {
    super('COURIER_MALFORMED_PACKET', 0x81 /* ReasonCode.MalformedPacket */, message, statement);
    this.name = 'MalformedPacketError';
  }
}

/** 0x82: well-formed bytes that the protocol forbids in this place. */
export class ProtocolError extends MqttError {
  constructor(message: string, statement?: string) {
    super('COURIER_PROTOCOL_ERROR', 0x82 /* ReasonCode.ProtocolError */, message, statement);
    this.name = 'ProtocolError';
  }
}

/** 0x95: the packet exceeds the receiver's Maximum Packet Size. */
export class PacketTooLargeError extends MqttError {
  readonly size: number;
  readonly limit: number;
  constructor(size: number, limit: number, statement?: string) {
    super('COURIER_PACKET_TOO_LARGE', 0x95 /* ReasonCode.PacketTooLarge */, `packet of ${size} bytes exceeds the maximum of ${limit}`, statement);
    this.name = 'PacketTooLargeError';
    this.size = size;
    this.limit = limit;
  }
}

/** 0x84: CONNECT with a protocol name/level this implementation does not speak. */
export class UnsupportedProtocolVersionError extends MqttError {
  readonly protocolName: string;
  readonly protocolLevel: number;
  constructor(protocolName: string, protocolLevel: number, statement?: string) {
    super(
      'COURIER_UNSUPPORTED_PROTOCOL_VERSION',
      0x84 /* ReasonCode.UnsupportedProtocolVersion */,
      `unsupported protocol ${JSON.stringify(protocolName)} level ${protocolLevel}`,
      statement,
    );
    this.name = 'UnsupportedProtocolVersionError';
    this.protocolName = protocolName;
    this.protocolLevel = protocolLevel;
  }
}

/**
 * The encoder was asked for a packet that cannot be put on the wire as given (a string over
 * 65,535 bytes, a QoS 1 PUBLISH without a Packet Identifier, a property the packet type does not
 * allow, ...). A bug in the caller, never the peer's fault: 0x83 if it must be reported at all.
 */
export class InvalidPacketError extends MqttError {
  constructor(message: string, statement?: string) {
    super('COURIER_INVALID_PACKET', 0x83 /* ReasonCode.ImplementationSpecificError */, message, statement);
    this.name = 'InvalidPacketError';
  }
}

export function isMqttError(err: unknown): err is MqttError {
  return err instanceof MqttError;
}
