//! A raw gRPC codec that sends bytes as they are (garbage on a stream or in a unary call)
//! and reads `DataRequestProto` answers.

use bytes::{Buf, BufMut};
use jina::proto::jina::DataRequestProto;
use prost::Message;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

#[derive(Default)]
pub struct RawCodec;
pub struct RawEncoder;
pub struct ProtoDecoder;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = DataRequestProto;
    type Encoder = RawEncoder;
    type Decoder = ProtoDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> ProtoDecoder {
        ProtoDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for ProtoDecoder {
    type Item = DataRequestProto;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<DataRequestProto>, Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        DataRequestProto::decode(bytes)
            .map(Some)
            .map_err(|e| Status::internal(e.to_string()))
    }
}
