"""The IAM actions an S3 REST request needs, from its method, path-style URL and sub-resource.

S3's API operations and IAM actions differ in name (ListObjectsV2 needs s3:ListBucket,
HeadObject s3:GetObject, every multipart part s3:PutObject): the table follows the Amazon S3
User Guide, "Required permissions for Amazon S3 API operations". An operation missing from
it raises UnreadableS3Request, never an unchecked pass.
"""
from __future__ import annotations

from typing import Any
from urllib.parse import unquote
from xml.etree import ElementTree


class UnreadableS3Request(Exception):
    pass


# Bucket sub-resources (?location, ?policy, ...): IAM action per method.
_BUCKET_SUBRESOURCES = {
    "location": {"GET": "GetBucketLocation"},
    "policy": {"GET": "GetBucketPolicy", "PUT": "PutBucketPolicy", "DELETE": "DeleteBucketPolicy"},
    "encryption": {"GET": "GetEncryptionConfiguration", "PUT": "PutEncryptionConfiguration", "DELETE": "PutEncryptionConfiguration"},
    "versioning": {"GET": "GetBucketVersioning", "PUT": "PutBucketVersioning"},
    "notification": {"GET": "GetBucketNotification", "PUT": "PutBucketNotification"},
    "tagging": {"GET": "GetBucketTagging", "PUT": "PutBucketTagging", "DELETE": "PutBucketTagging"},
    "acl": {"GET": "GetBucketAcl", "PUT": "PutBucketAcl"},
    "logging": {"GET": "GetBucketLogging", "PUT": "PutBucketLogging"},
    "lifecycle": {"GET": "GetLifecycleConfiguration", "PUT": "PutLifecycleConfiguration", "DELETE": "PutLifecycleConfiguration"},
    "publicAccessBlock": {"GET": "GetBucketPublicAccessBlock", "PUT": "PutBucketPublicAccessBlock", "DELETE": "PutBucketPublicAccessBlock"},
    "ownershipControls": {"GET": "GetBucketOwnershipControls", "PUT": "PutBucketOwnershipControls", "DELETE": "PutBucketOwnershipControls"},
    "uploads": {"GET": "ListBucketMultipartUploads"},
    "versions": {"GET": "ListBucketVersions"},
    "delete": {"POST": "DeleteObject"},  # DeleteObjects: s3:DeleteObject on every key
}
_OBJECT_SUBRESOURCES = {
    "tagging": {"GET": "GetObjectTagging", "PUT": "PutObjectTagging", "DELETE": "DeleteObjectTagging"},
    "acl": {"GET": "GetObjectAcl", "PUT": "PutObjectAcl"},
    "uploads": {"POST": "PutObject"},  # CreateMultipartUpload
    "uploadId": {"GET": "ListMultipartUploadParts", "PUT": "PutObject", "POST": "PutObject", "DELETE": "AbortMultipartUpload"},
}
_BUCKET_METHODS = {"GET": "ListBucket", "HEAD": "ListBucket", "PUT": "CreateBucket", "DELETE": "DeleteBucket"}
_OBJECT_METHODS = {"GET": "GetObject", "HEAD": "GetObject", "PUT": "PutObject", "DELETE": "DeleteObject"}
# Query parameters that are not sub-resources (listing, versions, parts, presigning, response
# overrides, botocore's x-id); any other one is a sub-resource, and must be in the tables.
_PARAMETERS = {"prefix", "delimiter", "max-keys", "list-type", "continuation-token", "start-after", "encoding-type",
               "fetch-owner", "marker", "key-marker", "version-id-marker", "upload-id-marker", "max-uploads", "max-parts",
               "part-number-marker", "versionId", "partNumber", "x-id", "optional-object-attributes"}


def route(method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], body: bytes) -> list[tuple[str, dict[str, Any]]]:
    """[(IAM action, parameters)] for one path-style S3 request (boto3 and the AWS CLI use
    path style against a local endpoint)."""
    bucket, _, key = path.lstrip("/").partition("/")
    subresources = [name for name in query if name not in _PARAMETERS and not name.startswith(("X-Amz-", "response-"))]
    known = _OBJECT_SUBRESOURCES if key else _BUCKET_SUBRESOURCES
    if len(subresources) > 1 or any(name not in known for name in subresources):
        raise UnreadableS3Request(f"S3 {method} with ?{'&'.join(subresources)} is not an operation the local AWS authorizes")
    if not bucket:
        if method == "GET":
            return [("ListAllMyBuckets", {})]
        raise UnreadableS3Request(f"S3 {method} / is not an operation")
    params: dict[str, Any] = {"Bucket": bucket}
    if not key:
        for name, actions in _BUCKET_SUBRESOURCES.items():
            if name in query:
                if method not in actions:
                    raise UnreadableS3Request(f"S3 {method} ?{name} is not an operation the local AWS authorizes")
                if name == "delete":
                    return _deleted(params, body)
                return [(actions[method], params)]
        if method not in _BUCKET_METHODS:
            raise UnreadableS3Request(f"S3 {method} on a bucket is not an operation the local AWS authorizes")
        for name in ("prefix", "delimiter", "max-keys"):
            if name in query:
                params[name] = query[name][0]
        return [(_BUCKET_METHODS[method], params)]
    params["Key"] = key
    for name, actions in _OBJECT_SUBRESOURCES.items():
        if name in query:
            if method not in actions:
                raise UnreadableS3Request(f"S3 {method} ?{name} on an object is not an operation the local AWS authorizes")
            return [(actions[method], params), *_copy_source(headers)]
    if method not in _OBJECT_METHODS:
        raise UnreadableS3Request(f"S3 {method} on an object is not an operation the local AWS authorizes")
    action = _OBJECT_METHODS[method]
    if "versionId" in query and action in ("GetObject", "DeleteObject"):
        action += "Version"
    return [(action, params), *_copy_source(headers)]


def _deleted(params: dict[str, Any], body: bytes) -> list[tuple[str, dict[str, Any]]]:
    """DeleteObjects: s3:DeleteObject (or DeleteObjectVersion) on every key of its XML body."""
    objects = []
    for element in ElementTree.fromstring(body).iter():
        if element.tag.rsplit("}", 1)[-1] == "Object":
            fields = {child.tag.rsplit("}", 1)[-1]: child.text or "" for child in element}
            objects.append(("DeleteObjectVersion" if fields.get("VersionId") else "DeleteObject", {**params, "Key": fields.get("Key", "")}))
    return objects


def _copy_source(headers: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    """CopyObject and UploadPartCopy also read their source."""
    source = headers.get("x-amz-copy-source")
    if not source:
        return []
    bucket, _, key = unquote(source).lstrip("/").partition("/")
    return [("GetObject", {"Bucket": bucket, "Key": key.split("?versionId=")[0]})]
