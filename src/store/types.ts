// Placeholder: the broker-core work defines the Store interface here.
export interface Store {
  open(): Promise<void>;
  close(): Promise<void>;
}
